"""Family ``lists``: list algorithms, from the sum of a list to Kadane's maximum subarray."""

from __future__ import annotations

from .base import CodeFamily

FAMILY = CodeFamily("lists", "list algorithms")
variant = FAMILY.variant


def _two_distinct(g):
    xs = g.ints(min_len=2)
    while len(set(xs)) < 2:
        xs.append(g.int())
    return (xs,)


def _sorted_pair(g):
    return (sorted(g.ints()), sorted(g.ints()))


def _with_zeros(g):
    return ([g.choice([0, 0, g.int()]) for _ in range(g.length())],)


# ----------------------------------------------------------------------------- tier 0
@variant(tier=0, doc="Return the sum of the numbers in xs.", inputs=lambda g: (g.ints(),), edges=[([],)])
def sum_list(xs: list[int]) -> int:
    return sum(xs)


@variant(tier=0, doc="Return the largest number in the non-empty list xs.", inputs=lambda g: (g.ints(min_len=1),),
         edges=[([-5, -2, -9],)])
def largest(xs: list[int]) -> int:
    return max(xs)


@variant(tier=0, doc="Return the smallest number in the non-empty list xs.", inputs=lambda g: (g.ints(min_len=1),),
         edges=[([4],)])
def smallest(xs: list[int]) -> int:
    return min(xs)


@variant(tier=0, doc="Return the first element of the non-empty list xs.", inputs=lambda g: (g.ints(min_len=1),))
def first_element(xs: list[int]) -> int:
    return xs[0]


@variant(tier=0, doc="Return how many elements the list xs has.", inputs=lambda g: (g.ints(),), edges=[([],)])
def count_items(xs: list[int]) -> int:
    return len(xs)


# ----------------------------------------------------------------------------- tier 1
@variant(tier=1, doc="Return how many even numbers xs contains.", inputs=lambda g: (g.ints(),),
         edges=[([],), ([0, -2, 3],)])
def count_evens(xs: list[int]) -> int:
    return sum(1 for x in xs if x % 2 == 0)


@variant(tier=1, doc="Return a new list with only the numbers of xs that are greater than zero, in order.",
         inputs=lambda g: (g.ints(),), edges=[([],), ([0, -1],)])
def only_positive(xs: list[int]) -> list[int]:
    return [x for x in xs if x > 0]


@variant(tier=1, doc="Return the running sums of xs: element i is xs[0] + ... + xs[i].",
         inputs=lambda g: (g.ints(),), edges=[([],), ([5],)])
def running_sum(xs: list[int]) -> list[int]:
    out, total = [], 0
    for x in xs:
        total += x
        out.append(total)
    return out


@variant(tier=1, doc="Return xs without repeated values, keeping the first occurrence of each, in order.",
         inputs=lambda g: (g.ints(-4, 4),), edges=[([],), ([1, 1, 1],)])
def remove_duplicates(xs: list[int]) -> list[int]:
    seen, out = set(), []
    for x in xs:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


@variant(tier=1, doc="Return the second largest distinct value in xs (xs has at least two distinct values).",
         inputs=_two_distinct, edges=[([5, 5, 3],), ([1, 2],)])
def second_largest(xs: list[int]) -> int:
    return sorted(set(xs))[-2]


@variant(tier=1, doc="Return a new list with the elements of xs in reverse order.", inputs=lambda g: (g.ints(),),
         edges=[([],)])
def reverse_list(xs: list[int]) -> list[int]:
    return xs[::-1]


# ----------------------------------------------------------------------------- tier 2
@variant(tier=2, doc="Rotate xs left by k places (k >= 0 may exceed the length; an empty list stays empty).",
         inputs=lambda g: (g.ints(), g.int(0, 12)), edges=[([], 3), ([1, 2, 3], 0), ([1, 2, 3], 4)])
def rotate_left(xs: list[int], k: int) -> list[int]:
    if not xs:
        return []
    k %= len(xs)
    return xs[k:] + xs[:k]


@variant(tier=2, doc="Merge the two sorted lists a and b into one sorted list.", inputs=_sorted_pair,
         edges=[([], []), ([1, 3], []), ([1, 1], [1])])
def merge_sorted(a: list[int], b: list[int]) -> list[int]:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] <= b[j]:
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    return out + a[i:] + b[j:]


@variant(tier=2, doc="Return the length of the longest run of strictly increasing consecutive elements of xs "
         "(0 for an empty list).", inputs=lambda g: (g.ints(-5, 5),), edges=[([],), ([3, 3, 3],), ([1, 2, 3],)])
def longest_increasing_run(xs: list[int]) -> int:
    best = current = 0
    for i, x in enumerate(xs):
        current = current + 1 if i > 0 and x > xs[i - 1] else 1
        best = max(best, current)
    return best


@variant(tier=2, doc="Split xs into consecutive chunks of n elements (n >= 1); the last chunk may be shorter.",
         inputs=lambda g: (g.ints(), g.int(1, 4)), edges=[([], 2), ([1, 2, 3], 3), ([1, 2, 3], 5)])
def chunk(xs: list[int], n: int) -> list[list[int]]:
    return [xs[i:i + n] for i in range(0, len(xs), n)]


@variant(tier=2, doc="Return xs with all zeros moved to the end, the other elements keeping their order.",
         inputs=_with_zeros, edges=[([],), ([0, 0],), ([1, 0, 2],)])
def move_zeros(xs: list[int]) -> list[int]:
    non_zero = [x for x in xs if x != 0]
    return non_zero + [0] * (len(xs) - len(non_zero))


@variant(tier=2, doc="Return the largest sum of a non-empty contiguous sublist of the non-empty list xs.",
         inputs=lambda g: (g.ints(min_len=1),), edges=[([-3],), ([-2, -1],), ([2, -1, 2],)])
def max_subarray_sum(xs: list[int]) -> int:
    best = current = xs[0]
    for x in xs[1:]:
        current = max(x, current + x)
        best = max(best, current)
    return best
