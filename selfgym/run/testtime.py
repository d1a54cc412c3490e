"""Test-time self-improvement (TT-SI): retry failed or uncertain tasks with reflections, within one evaluation.

``evaluate_with_retries`` first scores plain attempts (``k`` per task: success rate and pass@k,
exactly what ``selfgym eval`` reports), then for a few rounds reflects on the failures and retries
the tasks that are not yet solved (and, with ``retry_uncertain``, those solved by only some of the
``k`` attempts), with the lessons in the prompt. The retries are reported apart from pass@k:
a model that needs them has not solved the task at pass@k. Reflections written here live only in
this process (held-out tasks never enter memory); trajectories carry ``info["phase"]``
(``plain``, ``retry1``, ...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium

from selfgym.agents.llm import LLMAgent
from selfgym.agents.reflection import ReflectionConfig, ReflectionMemory, ReflectionWriter, Reflector
from selfgym.errors import ConfigError
from selfgym.run.evaluate import EvalResult, summarise
from selfgym.run.rollout import RolloutConfig, run_rollouts
from selfgym.seeds import derive_seed
from selfgym.store import Store
from selfgym.types import Task, Trajectory

__all__ = ["RetryConfig", "SelfImproveResult", "evaluate_with_retries"]


@dataclass(frozen=True, kw_only=True)
class RetryConfig:
    """How the test-time retries run."""

    rounds: int = field(default=1, metadata={"help": "retry rounds after the plain attempts"})
    attempts: int = field(default=1, metadata={"help": "attempts per retried task in each round"})
    retry_uncertain: bool = field(
        default=False, metadata={"help": "also retry tasks that only some of the k plain attempts solved"})
    reflection: ReflectionConfig = field(default_factory=ReflectionConfig, metadata={"help": "lesson settings"})

    def __post_init__(self) -> None:
        if self.rounds < 0 or self.attempts < 1:
            raise ConfigError(f"RetryConfig: rounds must be >= 0 and attempts >= 1, "
                              f"got {self.rounds} and {self.attempts}")


@dataclass
class SelfImproveResult:
    """Plain scores, and what the retries added (kept apart)."""

    plain: EvalResult
    solved_plain: float
    solved_with_retries: float
    rounds: list[dict[str, Any]]
    trajectories: list[Trajectory] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"plain": self.plain.to_dict(), "solved_plain": self.solved_plain,
                "solved_with_retries": self.solved_with_retries, "rounds": self.rounds}


def _solved(trajectories: Sequence[Trajectory]) -> dict[str, list[bool]]:
    out: dict[str, list[bool]] = {}
    for traj in trajectories:
        if not traj.aborted:
            out.setdefault(traj.task_id, []).append(traj.success)
    return out


def evaluate_with_retries(
    env: str | Callable[[], gymnasium.Env],
    agent: LLMAgent,
    tasks: Sequence[Task],
    *,
    k: int = 1,
    retry: RetryConfig | None = None,
    rollout: RolloutConfig | None = None,
    reflector: Reflector | None = None,
    store: Store | None = None,
    **trajectory_fields: Any,
) -> SelfImproveResult:
    """Plain ``k`` attempts per task, then reflect-and-retry rounds on the unsolved (see module docstring).

    Args:
        reflector: writes the lessons (default: the agent's own policy).
        store: every trajectory is written here as it ends (reflections are not).
    """
    retry = retry or RetryConfig()
    rollout = rollout or RolloutConfig(split="heldout")
    reflector = reflector or Reflector(agent.policy, retry.reflection)
    memory = ReflectionMemory(None, retry.reflection)
    writer = ReflectionWriter(reflector, memory)
    by_id = {t.id: t for t in tasks}
    fields = {k_: v for k_, v in trajectory_fields.items() if k_ != "info"}
    plain = run_rollouts(env, agent, list(tasks), dataclasses.replace(rollout, group_size=k), store=store,
                         info={"phase": "plain"}, **fields)
    everything = list(plain.trajectories)
    outcomes = _solved(plain.trajectories)
    solved = {t for t, o in outcomes.items() if any(o)}
    to_retry = [t for t in tasks if t.id not in solved
                or (retry.retry_uncertain and not all(outcomes.get(t.id, [False])))]
    writer([(by_id[t.task_id], t) for t in plain.trajectories if t.task_id in {x.id for x in to_retry}])
    rounds: list[dict[str, Any]] = []
    retry_agent = agent.with_memory([*agent.memory, memory])
    attempt = k
    for number in range(1, retry.rounds + 1):
        if not to_retry:
            break
        result = run_rollouts(
            env, retry_agent, to_retry,
            dataclasses.replace(rollout, group_size=retry.attempts, seed=derive_seed(rollout.seed, "retry", number)),
            store=store, first_attempt=attempt, on_step_end=writer, info={"phase": f"retry{number}"}, **fields)
        attempt += retry.attempts
        everything += result.trajectories
        round_solved = {t for t, o in _solved(result.trajectories).items() if any(o)}
        rounds.append({"round": number, "retried": len(to_retry), "solved": len(round_solved),
                       "success_rate": result.success_rate, "reflections": len(memory.items())})
        solved |= round_solved
        to_retry = [t for t in to_retry if t.id not in solved]
    return SelfImproveResult(
        plain=summarise(plain.trajectories, by_id, k),
        solved_plain=len({t for t, o in outcomes.items() if any(o)}) / max(1, len(tasks)),
        solved_with_retries=len(solved) / max(1, len(tasks)),
        rounds=rounds, trajectories=everything,
    )
