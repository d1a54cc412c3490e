"""Family ``arithmetic``: integer arithmetic, from ``add(a, b)`` to primes and Collatz steps."""

from __future__ import annotations

from .base import CodeFamily

FAMILY = CodeFamily("arithmetic", "integer arithmetic")
variant = FAMILY.variant


# ----------------------------------------------------------------------------- tier 0
@variant(tier=0, doc="Return the sum of a and b.", inputs=lambda g: (g.int(), g.int()), edges=[(0, 0)])
def add(a: int, b: int) -> int:
    return a + b


@variant(tier=0, doc="Return a minus b.", inputs=lambda g: (g.int(), g.int()), edges=[(0, 5)])
def subtract(a: int, b: int) -> int:
    return a - b


@variant(tier=0, doc="Return the product of a and b.", inputs=lambda g: (g.int(), g.int()), edges=[(0, 7)])
def multiply(a: int, b: int) -> int:
    return a * b


@variant(tier=0, doc="Return the larger of a and b.", inputs=lambda g: (g.int(), g.int()), edges=[(3, 3), (-2, -9)])
def larger(a: int, b: int) -> int:
    return a if a >= b else b


@variant(tier=0, doc="Return n squared.", inputs=lambda g: (g.int(),), edges=[(0,), (-3,)])
def square(n: int) -> int:
    return n * n


@variant(tier=0, doc="Return True if n is even, else False.", inputs=lambda g: (g.int(),), edges=[(0,), (-3,)])
def is_even(n: int) -> bool:
    return n % 2 == 0


# ----------------------------------------------------------------------------- tier 1
@variant(tier=1, doc="Return the sum of the decimal digits of n (ignore the sign of n).",
         inputs=lambda g: (g.int() * 37,), edges=[(0,), (-45,)])
def sum_of_digits(n: int) -> int:
    return sum(int(digit) for digit in str(abs(n)))


def _clamp_inputs(g):
    lo = g.int()
    hi = lo + g.nat()
    return (g.int(lo - 20, hi + 20), lo, hi)


@variant(tier=1, doc="Return x limited to the range [lo, hi]: lo if x < lo, hi if x > hi, else x.",
         inputs=_clamp_inputs, edges=[(5, 5, 5), (-1, 0, 10), (11, 0, 10)])
def clamp(x: int, lo: int, hi: int) -> int:
    return max(lo, min(x, hi))


@variant(tier=1, doc="Return how many decimal digits n has (ignore the sign; 0 has one digit).",
         inputs=lambda g: (g.int() * 131,), edges=[(0,), (-7,), (100,)])
def count_digits(n: int) -> int:
    return len(str(abs(n)))


@variant(tier=1, doc="Return the average of a, b and c rounded down to an integer (floor division).",
         inputs=lambda g: (g.int(), g.int(), g.int()), edges=[(-1, 0, 0), (1, 1, 2)])
def average3(a: int, b: int, c: int) -> int:
    return (a + b + c) // 3


@variant(tier=1, doc="Return True if a is divisible by b (b is never 0), else False.",
         inputs=lambda g: (g.int(), g.choice([2, 3, 4, 5, 7, -3])), edges=[(0, 3), (-9, 3), (10, 4)])
def is_divisible(a: int, b: int) -> bool:
    return a % b == 0


@variant(tier=1, doc="Return the absolute difference between a and b.",
         inputs=lambda g: (g.int(), g.int()), edges=[(4, 4), (-3, 3)])
def absolute_difference(a: int, b: int) -> int:
    return abs(a - b)


# ----------------------------------------------------------------------------- tier 2
@variant(tier=2, doc="Return the greatest common divisor of the non-negative integers a and b (gcd(0, 0) is 0).",
         inputs=lambda g: (g.nat() * 6, g.nat() * 4), edges=[(0, 5), (0, 0), (12, 18), (17, 5)])
def gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


@variant(tier=2, doc="Return True if n is a prime number, else False (numbers below 2 are not prime).",
         inputs=lambda g: (g.int(-5, g.magnitude * 10),), edges=[(0,), (1,), (2,), (97,), (91,), (-7,)])
def is_prime(n: int) -> bool:
    if n < 2:
        return False
    divisor = 2
    while divisor * divisor <= n:
        if n % divisor == 0:
            return False
        divisor += 1
    return True


@variant(tier=2, doc="Return the digital root of n >= 0: sum its digits repeatedly until one digit is left.",
         inputs=lambda g: (g.nat() * 997,), edges=[(0,), (9,), (10,), (99999,)])
def digital_root(n: int) -> int:
    while n >= 10:
        n = sum(int(digit) for digit in str(n))
    return n


@variant(tier=2, doc="Return the binary representation of n >= 0 as a string, without a '0b' prefix.",
         inputs=lambda g: (g.nat() * 13,), edges=[(0,), (1,), (8,)])
def to_binary(n: int) -> str:
    if n == 0:
        return "0"
    digits = ""
    while n:
        digits = str(n % 2) + digits
        n //= 2
    return digits


@variant(tier=2, doc="Return n with its decimal digits reversed, keeping the sign (reverse_number(-120) == -21).",
         inputs=lambda g: (g.int() * 101,), edges=[(0,), (-120,), (1000,), (7,)])
def reverse_number(n: int) -> int:
    sign = -1 if n < 0 else 1
    return sign * int(str(abs(n))[::-1])


@variant(tier=2, doc="Return how many Collatz steps take n >= 1 to 1 (even: n // 2, odd: 3 * n + 1).",
         inputs=lambda g: (g.int(1, g.magnitude * 10),), edges=[(1,), (2,), (27,)])
def collatz_steps(n: int) -> int:
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps
