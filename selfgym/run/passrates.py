"""The solver pass rates the proposal judge needs, measured with batched rollouts.

``ProposeTask-v0`` and the teacher take a ``PassRates`` function (``selfgym.envs.generators.judge``);
``rollout_pass_rates(solver)`` is the one that plays each candidate task ``attempts`` times with the
solver in the code env, all in one batched rollout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from selfgym.run.rollout import RolloutConfig, run_rollouts
from selfgym.types import Task

__all__ = ["rollout_pass_rates", "solver_pass_rates"]


def solver_pass_rates(tasks: Sequence[Task], solver: Any, attempts: int, *, env_id: str = "selfgym/Code-v0",
                      env_kwargs: dict[str, Any] | None = None, seed: int = 0) -> list[float]:
    """Each task's pass rate over ``attempts`` solver episodes (NaN when every episode was aborted).

    Args:
        solver: a ``BatchAgent`` (the LLM agent: one ``generate`` per step across all episodes), an
            ``Agent`` (reused for every episode) or a factory ``env -> Agent``.
    """
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


def rollout_pass_rates(solver: Any, *, env_id: str = "selfgym/Code-v0", env_kwargs: dict[str, Any] | None = None,
                       seed: int = 0) -> Any:
    """A ``PassRates`` function: ``(tasks, attempts) -> solver_pass_rates(...)`` with this solver."""

    def pass_rates(tasks: Sequence[Task], attempts: int) -> list[float]:
        return solver_pass_rates(tasks, solver, attempts, env_id=env_id, env_kwargs=env_kwargs, seed=seed)

    return pass_rates
