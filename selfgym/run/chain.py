"""SAGE-style sequential rollouts: a chain of similar tasks where skills written on task i are
in the library (prompt and ``skills`` module) for task i+1."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium

from selfgym.skills.curator import SkillCurator
from selfgym.skills.env import skills_env_factory
from selfgym.types import Task, Trajectory

__all__ = ["ChainResult", "run_chain"]


@dataclass
class ChainResult:
    """The chain's episodes in order, and the curator's metrics after each task."""

    trajectories: list[Trajectory] = field(default_factory=list)
    steps: list[dict[str, float]] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        scored = [t.success for t in self.trajectories if not t.aborted]
        return sum(scored) / len(scored) if scored else 0.0


def run_chain(make_env: Callable[[], gymnasium.Env], agent: Any, tasks: Sequence[Task], curator: SkillCurator, *,
              group_size: int = 1, seed: int = 0, store: Any = None, **trajectory_fields: Any) -> ChainResult:
    """Play ``tasks`` one after another (``group_size`` attempts each); after each task the curator
    updates the library from its episodes, so the next task can retrieve and import new skills.

    ``agent`` is an ``LLMAgent`` (the library is added to its memory) or a factory ``env -> Agent``.
    """
    from selfgym.run.rollout import RolloutConfig, run_rollouts

    library = curator.library
    if hasattr(agent, "with_memory"):
        agent = agent.with_memory([*[m for m in agent.memory if m.kind != library.kind], library])
    factory = skills_env_factory(make_env, library)
    result = ChainResult()
    for i, task in enumerate(tasks):
        rollout = run_rollouts(factory, agent, [task], RolloutConfig(group_size=group_size, seed=seed + i * group_size,
                                                                      progress=False),
                               store=store, **trajectory_fields)
        result.trajectories.extend(rollout.trajectories)
        result.steps.append(curator.update(rollout.trajectories, {task.id: task}))
    return result
