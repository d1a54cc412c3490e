"""Family ``recursion``: problems with a natural recursive solution, from factorials to permutations."""

from __future__ import annotations

from .base import CodeFamily

FAMILY = CodeFamily("recursion", "recursion")
variant = FAMILY.variant


def _nested(g, depth: int = 0) -> list:
    items: list = []
    for _ in range(g.int(0, 3)):
        items.append(_nested(g, depth + 1) if depth < 3 and g.int(0, 2) == 0 else g.int(-9, 9))
    return items


# ----------------------------------------------------------------------------- tier 0
@variant(tier=0, doc="Return n! (the product 1 * 2 * ... * n; 0! is 1).", inputs=lambda g: (g.int(0, 10),),
         edges=[(0,), (1,)])
def factorial(n: int) -> int:
    return 1 if n <= 1 else n * factorial(n - 1)


@variant(tier=0, doc="Return 0 + 1 + 2 + ... + n for n >= 0.", inputs=lambda g: (g.nat(),), edges=[(0,)])
def sum_to(n: int) -> int:
    return n * (n + 1) // 2


@variant(tier=0, doc="Return base raised to the power exp (exp >= 0).",
         inputs=lambda g: (g.int(-5, 5), g.int(0, 6)), edges=[(0, 0), (7, 0)])
def power(base: int, exp: int) -> int:
    return base ** exp


# ----------------------------------------------------------------------------- tier 1
@variant(tier=1, doc="Return the n-th Fibonacci number, where fibonacci(0) == 0 and fibonacci(1) == 1.",
         inputs=lambda g: (g.int(0, 25),), edges=[(0,), (1,), (2,)])
def fibonacci(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


@variant(tier=1, doc="Flatten a nested list of integers into a flat list, keeping the order.",
         inputs=lambda g: (_nested(g),), edges=[([],), ([[], [[]]],), ([1, [2, [3]]],)])
def flatten(nested: list) -> list[int]:
    out: list[int] = []
    for item in nested:
        if isinstance(item, list):
            out.extend(flatten(item))
        else:
            out.append(item)
    return out


@variant(tier=1, doc="Return the sum of all integers in a nested list of integers.",
         inputs=lambda g: (_nested(g),), edges=[([],), ([[-1], [[2]]],)])
def nested_sum(nested: list) -> int:
    return sum(nested_sum(item) if isinstance(item, list) else item for item in nested)


@variant(tier=1, doc="Return the list [n, n-1, ..., 1] for n >= 0 (empty for 0).", inputs=lambda g: (g.int(0, 12),),
         edges=[(0,), (1,)])
def count_down(n: int) -> list[int]:
    return [] if n == 0 else [n] + count_down(n - 1)


@variant(tier=1, doc="Return the product of the decimal digits of n >= 0.", inputs=lambda g: (g.nat() * 7,),
         edges=[(0,), (10,), (999,)])
def digit_product(n: int) -> int:
    return n if n < 10 else (n % 10) * digit_product(n // 10)


# ----------------------------------------------------------------------------- tier 2
@variant(tier=2, doc="Return the nesting depth of a list: a list without lists inside has depth 1 (so [] has "
         "depth 1 and [1, [2]] has depth 2).", inputs=lambda g: (_nested(g),), edges=[([],), ([[[]]],), ([1, [2]],)])
def max_depth(nested: list) -> int:
    return 1 + max((max_depth(item) for item in nested if isinstance(item, list)), default=0)


@variant(tier=2, doc="Return all distinct permutations of the string s, sorted alphabetically.",
         inputs=lambda g: (g.word(0, 4, "abc"),), edges=[("",), ("aa",), ("ab",)])
def permutations(s: str) -> list[str]:
    if len(s) <= 1:
        return [s]
    out = set()
    for i, char in enumerate(s):
        for rest in permutations(s[:i] + s[i + 1:]):
            out.add(char + rest)
    return sorted(out)


@variant(tier=2, doc="Return how many subsets of the elements of xs (chosen by position) sum to target; the empty "
         "subset sums to 0.", inputs=lambda g: (g.ints(-5, 5, n=g.int(0, 8)), g.int(-5, 5)),
         edges=[([], 0), ([], 1), ([1, 1], 1)])
def subset_sums_count(xs: list[int], target: int) -> int:
    if not xs:
        return 1 if target == 0 else 0
    return subset_sums_count(xs[1:], target - xs[0]) + subset_sums_count(xs[1:], target)


@variant(tier=2, doc="Return the number of ways to climb n >= 0 stairs taking 1 or 2 steps at a time (1 way for 0).",
         inputs=lambda g: (g.int(0, 30),), edges=[(0,), (1,), (2,)])
def climb_stairs(n: int) -> int:
    a, b = 1, 1
    for _ in range(n):
        a, b = b, a + b
    return a


@variant(tier=2, doc="Return all strings of n >= 0 binary digits without two adjacent 1s, sorted.",
         inputs=lambda g: (g.int(0, 6),), edges=[(0,), (1,), (2,)])
def no_adjacent_ones(n: int) -> list[str]:
    if n == 0:
        return [""]
    out = []
    for rest in no_adjacent_ones(n - 1):
        out.append(rest + "0")
        if not rest.endswith("1"):
            out.append(rest + "1")
    return sorted(out)
