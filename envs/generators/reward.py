"""The proposal reward's learnability factor, and the solver attempts that measure it.

``learnability(p)`` is ``4 p (1 - p)`` (1 when the solver passes half the time, 0 when it always or
never does); ``band(p, lo, hi)`` is WebRL's difficulty band (1 inside ``[lo, hi]``, else 0).
``solver_pass_rates`` plays each candidate task ``attempts`` times with the solver in the code env,
all in one batched rollout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from selfgym.errors import ConfigError
from selfgym.types import Task

__all__ = ["RewardKind", "band", "learnability", "learnability_factor", "solver_pass_rates"]

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


def solver_pass_rates(tasks: Sequence[Task], solver: Any, attempts: int, *, env_id: str = "selfgym/Code-v0",
                      env_kwargs: dict[str, Any] | None = None, seed: int = 0) -> list[float]:
    """Each task's pass rate over ``attempts`` solver episodes (NaN when every episode was aborted).

    Args:
        solver: a ``BatchAgent`` (the LLM agent: one ``generate`` per step across all episodes), an
            ``Agent`` (reused for every episode) or a factory ``env -> Agent``.
    """
    from selfgym.rollout import RolloutConfig, run_rollouts

    if not tasks:
        return []
    concurrent = max(1, min(32, len(tasks) * attempts))
    if hasattr(solver, "act_batch") or not hasattr(solver, "act"):
        agent = solver
    else:  # one Agent object: it plays one episode at a time
        agent, concurrent = (lambda env: solver), 1
    config = RolloutConfig(group_size=attempts, max_concurrent=concurrent, seed=seed, progress=False)
    result = run_rollouts(env_id, agent, list(tasks), config, env_kwargs=env_kwargs)
    rates = []
    for i in range(len(tasks)):
        group = [t for t in result.trajectories[i * attempts:(i + 1) * attempts] if not t.aborted]
        rates.append(sum(t.success for t in group) / len(group) if group else float("nan"))
    return rates
