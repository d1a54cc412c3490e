"""The proposal reward's learnability factor, and the solver attempts that measure it.

``learnability(p)`` is ``4 p (1 - p)`` (1 when the solver passes half the time, 0 when it always or
never does); ``band(p, lo, hi)`` is WebRL's difficulty band (1 inside ``[lo, hi]``, else 0).
The pass rates themselves come from the runner (``selfgym.run.passrates``), injected into the judge.
"""

from __future__ import annotations

import math
from typing import Literal

from selfgym.errors import ConfigError

__all__ = ["RewardKind", "band", "learnability", "learnability_factor"]

RewardKind = Literal["learnability", "band"]


def learnability(p: float) -> float:
    """``4 p (1 - p)``: the variance of the solver's success, scaled to [0, 1]."""
    return 4.0 * p * (1.0 - p)


def band(p: float, lo: float, hi: float) -> float:
    """1 when the pass rate is inside ``[lo, hi]`` (WebRL's band of useful difficulty), else 0."""
    return float(lo <= p <= hi)


def learnability_factor(p: float | None, kind: RewardKind = "learnability", *, lo: float = 0.1,
                        hi: float = 0.9) -> float:
    """The reward factor for pass rate ``p`` (1 when there was no solver to measure it: ``p`` None)."""
    if p is None or math.isnan(p):
        return 1.0
    if kind == "learnability":
        return learnability(p)
    if kind == "band":
        return band(p, lo, hi)
    raise ConfigError(f"learnability reward must be 'learnability' or 'band', got {kind!r}")
