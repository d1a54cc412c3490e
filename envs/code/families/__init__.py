"""The procedural code-task families and the mixed source the env uses by default.

=============  =========================================================================
family         tier 0 (difficulty < 1/3) ... tier 2 (difficulty >= 2/3)
=============  =========================================================================
arithmetic     add(a, b), is_even(n) ... gcd, is_prime, Collatz steps
strings        reverse a string ... Caesar shift, run-length encoding, anagrams
lists          sum, largest ... rotate, merge sorted lists, maximum subarray
parsing        int("42"), count words ... evaluate "12+3-4", Roman numerals, quoted CSV
structures     dict lookup ... balanced brackets, top-k frequent, queues
recursion      factorial, sum to n ... permutations, subset sums, nesting depth
off_by_one     inclusive range sums, xs[-0:] ... overlapping counts, sliding windows
=============  =========================================================================

Seeds from ``HELDOUT_SEED_BASE`` up are the held-out split (``selfgym.envs.tasks``).
"""

from __future__ import annotations

from collections.abc import Sequence

from selfgym.errors import ConfigError

from . import arithmetic, lists, off_by_one, parsing, recursion, strings, structures
from .base import CodeFamily, Inputs, MixedCodeTasks, Variant

__all__ = ["FAMILIES", "CodeFamily", "Inputs", "MixedCodeTasks", "Variant", "code_tasks"]

FAMILIES: dict[str, CodeFamily] = {
    module.FAMILY.family: module.FAMILY
    for module in (arithmetic, strings, lists, parsing, structures, recursion, off_by_one)
}


def code_tasks(families: Sequence[str] | str | None = None) -> MixedCodeTasks:
    """The procedural families as one task source (all of them by default; a name or a list picks some)."""
    names = list(FAMILIES) if families is None else [families] if isinstance(families, str) else list(families)
    unknown = [name for name in names if name not in FAMILIES]
    if unknown:
        raise ConfigError(f"unknown code task family {unknown[0]!r}; choose from {', '.join(FAMILIES)}")
    return MixedCodeTasks([FAMILIES[name] for name in names], name="code")
