"""Family ``off_by_one``: boundaries that are easy to get wrong (inclusive ranges, ``xs[-0:]``, windows)."""

from __future__ import annotations

from .base import CodeFamily

FAMILY = CodeFamily("off_by_one", "off-by-one traps")
variant = FAMILY.variant


def _ordered(g):
    a = g.int()
    return (a, a + g.nat())


def _list_and_count(g):
    xs = g.ints()
    return (xs, g.int(0, len(xs)))


def _slice_bounds(g):
    xs = g.ints(min_len=1)
    i = g.int(0, len(xs) - 1)
    return (xs, i, g.int(i, len(xs) - 1))


def _overlap_text(g):
    sub = g.word(1, 3, "ab")
    return (g.word(0, 12, "ab"), sub)


# ----------------------------------------------------------------------------- tier 0
@variant(tier=0, doc="Return the sum of all integers from a to b, both included (a <= b).", inputs=_ordered,
         edges=[(3, 3), (-2, 2)])
def range_sum(a: int, b: int) -> int:
    return sum(range(a, b + 1))


@variant(tier=0, doc="Return how many integers lie between lo and hi, both included (0 if hi < lo).",
         inputs=lambda g: (g.int(), g.int()), edges=[(5, 5), (5, 4), (-3, 3)])
def count_between(lo: int, hi: int) -> int:
    return max(0, hi - lo + 1)


@variant(tier=0, doc="Return the last n elements of xs (0 <= n <= len(xs); n == 0 gives []).",
         inputs=_list_and_count, edges=[([1, 2, 3], 0), ([1, 2, 3], 3), ([], 0)])
def last_n(xs: list[int], n: int) -> list[int]:
    return xs[len(xs) - n:]


@variant(tier=0, doc="Return the first n elements of xs (n >= 0 may exceed the length: then all of xs).",
         inputs=lambda g: (g.ints(), g.int(0, 8)), edges=[([1, 2], 5), ([1, 2], 0)])
def first_n(xs: list[int], n: int) -> list[int]:
    return xs[:n]


# ----------------------------------------------------------------------------- tier 1
@variant(tier=1, doc="Return how many multiples of k (k >= 1) lie between lo and hi, both included (lo <= hi).",
         inputs=lambda g: (*_ordered(g), g.int(1, 7)), edges=[(0, 0, 3), (-6, 6, 3), (1, 2, 5), (5, 10, 5)])
def count_multiples(lo: int, hi: int, k: int) -> int:
    return hi // k - (lo - 1) // k


@variant(tier=1, doc="A straight fence of the given length (a multiple of gap) has a post at both ends and every gap "
         "metres. Return the number of posts.", inputs=lambda g: (g.int(0, 20) * 3, 3), edges=[(0, 5), (10, 10)])
def fence_posts(length: int, gap: int) -> int:
    return length // gap + 1


@variant(tier=1, doc="Return how many pages are needed to show items entries with per_page entries per page "
         "(0 entries need 0 pages).", inputs=lambda g: (g.nat(), g.int(1, 10)), edges=[(0, 5), (10, 5), (11, 5)])
def pages_needed(items: int, per_page: int) -> int:
    return (items + per_page - 1) // per_page


@variant(tier=1, doc="Return the elements of xs from index i to index j, both included (0 <= i <= j < len(xs)).",
         inputs=_slice_bounds, edges=[([1, 2, 3], 0, 2), ([1, 2, 3], 1, 1)])
def slice_inclusive(xs: list[int], i: int, j: int) -> list[int]:
    return xs[i:j + 1]


# ----------------------------------------------------------------------------- tier 2
@variant(tier=2, doc="Return how many times sub occurs in s, counting overlapping occurrences (sub is not empty).",
         inputs=_overlap_text, edges=[("aaaa", "aa"), ("", "a"), ("abab", "aba")])
def count_overlapping(s: str, sub: str) -> int:
    return sum(1 for i in range(len(s) - len(sub) + 1) if s[i:i + len(sub)] == sub)


@variant(tier=2, doc="Return the n-th element from the end of xs (n == 1 is the last one), or None if there is no "
         "such element.", inputs=lambda g: (g.ints(), g.int(-1, 8)), edges=[([1, 2, 3], 3), ([1, 2, 3], 0), ([], 1)])
def nth_from_end(xs: list[int], n: int) -> int | None:
    return xs[-n] if 1 <= n <= len(xs) else None


@variant(tier=2, doc="Return the sums of every window of k consecutive elements of xs, left to right (k >= 1; [] if "
         "k > len(xs)).", inputs=lambda g: (g.ints(), g.int(1, 4)), edges=[([1, 2, 3], 3), ([1, 2], 3), ([5], 1)])
def window_sums(xs: list[int], k: int) -> list[int]:
    return [sum(xs[i:i + k]) for i in range(len(xs) - k + 1)]


@variant(tier=2, doc="Return the middle element of the non-empty list xs; for an even length, the left one of the "
         "two middle elements.", inputs=lambda g: (g.ints(min_len=1),), edges=[([7],), ([1, 2],), ([1, 2, 3, 4],)])
def middle(xs: list[int]) -> int:
    return xs[(len(xs) - 1) // 2]
