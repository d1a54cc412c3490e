"""Held-out evaluation: success rate with bootstrap CIs and pass@k, per family and difficulty."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium

from selfgym.envs.base import llm_env
from selfgym.errors import ConfigError
from selfgym.run.episode import STUCK_AFTER, run_episode
from selfgym.stats import bootstrap_ci, pass_at_k
from selfgym.types import SPLITS, Task, Trajectory

__all__ = ["EvalResult", "evaluate", "evaluate_tasks", "first_attempt", "first_attempt_scores", "split_tasks",
           "summarise"]


@dataclass
class EvalResult:
    """Scores of one evaluation. ``by_family`` / ``by_difficulty`` hold the same keys per group;
    ``outcomes`` keeps each task's attempts (for paired comparisons of two evaluations)."""

    n_tasks: int
    k: int
    success_rate: float
    ci95: tuple[float, float]
    pass_at_k: dict[str, float]
    aborted: int
    by_family: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_difficulty: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcomes: dict[str, list[bool]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _scores(groups: dict[str, list[bool]], k: int) -> dict[str, Any]:
    flat = [float(s) for outcomes in groups.values() for s in outcomes]
    rate = sum(flat) / len(flat) if flat else float("nan")
    pass_k = {}
    for j in sorted({1, k}):
        values = [pass_at_k(len(o), sum(o), j) for o in groups.values() if len(o) >= j]
        pass_k[f"pass@{j}"] = sum(values) / len(values) if values else float("nan")
    return {"n_tasks": len(groups), "success_rate": rate, "ci95": bootstrap_ci(flat), "pass_at_k": pass_k}


def summarise(trajectories: Iterable[Trajectory], tasks: dict[str, Task], k: int) -> EvalResult:
    """Score trajectories (several attempts per task); aborted episodes are counted, not scored."""
    outcomes: dict[str, list[bool]] = defaultdict(list)
    aborted = 0
    for traj in trajectories:
        if traj.aborted:
            aborted += 1
        else:
            outcomes[traj.task_id].append(traj.success)
    overall = _scores(outcomes, k)
    by_family: dict[str, dict[str, list[bool]]] = defaultdict(dict)
    by_difficulty: dict[str, dict[str, list[bool]]] = defaultdict(dict)
    for task_id, outs in outcomes.items():
        task = tasks[task_id]
        by_family[task.family][task_id] = outs
        by_difficulty[f"{task.difficulty:.2f}"][task_id] = outs
    return EvalResult(
        n_tasks=overall["n_tasks"], k=k, success_rate=overall["success_rate"], ci95=overall["ci95"],
        pass_at_k=overall["pass_at_k"], aborted=aborted,
        by_family={f: _scores(g, k) for f, g in sorted(by_family.items())},
        by_difficulty={d: _scores(g, k) for d, g in sorted(by_difficulty.items())},
        outcomes=dict(outcomes),
    )


def first_attempt(traj: Trajectory) -> bool:
    """Whether the episode succeeded on its first submission: it succeeded and no turn was a later
    attempt (envs that count attempts put ``attempt`` in the step info; others have one answer)."""
    return traj.success and all(int(turn.info.get("attempt", 1)) <= 1 for turn in traj.turns)


def first_attempt_scores(trajectories: Iterable[Trajectory]) -> dict[str, Any]:
    """First-attempt success over the non-aborted episodes: rate, 95% CI, per-task outcomes."""
    outcomes: dict[str, list[bool]] = defaultdict(list)
    for traj in trajectories:
        if not traj.aborted:
            outcomes[traj.task_id].append(first_attempt(traj))
    scores = _scores(outcomes, 1)
    return {"success_rate": scores["success_rate"], "ci95": scores["ci95"], "outcomes": dict(outcomes)}


def split_tasks(source: Any, split: str, n_tasks: int, *, env_id: str = "") -> list[Task]:
    """The first ``n_tasks`` tasks of ``split`` in the source's fixed order.

    Raises:
        ConfigError: the split has no task (e.g. a plugin env that ships only train tasks): scoring
            nothing would print a NaN success rate, so say which splits do have tasks instead.
    """
    tasks = list(source.tasks(split, limit=n_tasks))
    if tasks:
        return tasks
    source_name = getattr(source, "name", type(source).__name__)
    others = [s for s in SPLITS if s != split and next(iter(source.tasks(s, limit=1)), None) is not None]
    has = f"has only {' and '.join(repr(s) for s in others)} tasks" if others else "has no tasks at all"
    raise ConfigError(f"{env_id or source_name} has no {split!r} tasks (its task source {source_name!r} {has}): "
                      f"nothing to evaluate; pick another split (selfgym eval --split NAME) or add {split} tasks "
                      "to the source")


def evaluate(
    env: gymnasium.Env,
    make_agent: Callable[[gymnasium.Env], Any],
    *,
    n_tasks: int,
    k: int = 1,
    split: str = "heldout",
    seed: int = 0,
    on_trajectory: Callable[[Trajectory], None] | None = None,
    **trajectory_fields: Any,
) -> tuple[EvalResult, list[Trajectory]]:
    """Run ``k`` attempts on each of the first ``n_tasks`` tasks of ``split`` and score them.

    The task list is the source's fixed order for the split, so two policies see the same tasks.
    ``on_trajectory`` gets each episode as it ends (e.g. ``store.add_trajectory``).
    """
    tasks = split_tasks(llm_env(env).task_source, split, n_tasks, env_id=env.spec.id if env.spec else "")
    agent = make_agent(env)
    trajectories = []
    for i, task in enumerate(tasks):
        for attempt in range(k):
            traj = run_episode(env, agent, seed=seed + i * k + attempt, task=task, attempt=attempt,
                               **trajectory_fields)
            trajectories.append(traj)
            if on_trajectory is not None:
                on_trajectory(traj)
    return summarise(trajectories, {t.id: t for t in tasks}, k), trajectories


def evaluate_tasks(
    env: str | Callable[[], gymnasium.Env],
    agent: Any,
    tasks: list[Task],
    *,
    k: int = 1,
    seed: int = 0,
    max_concurrent: int = 16,
    progress: bool = True,
    stuck_after: int = STUCK_AFTER,
    rollouts: Callable[..., Any] | None = None,
    **rollout_kwargs: Any,
) -> tuple[EvalResult, Any]:
    """Score ``k`` attempts per task with batched rollouts (one generate per step for LLM agents).

    ``agent`` is an ``LLMAgent`` or a factory ``env -> Agent``; ``rollout_kwargs`` go to
    ``run_rollouts`` (``store``, ``run_id``, ``iteration``, ``policy_id``...); ``stuck_after`` is
    ``RolloutConfig.stuck_after``; ``rollouts`` replaces
    ``run_rollouts`` (e.g. a ``selfgym.run.distributed.RayRollouts``). Returns the scores and the
    ``RolloutResult`` (trajectories, tokens, wall time).
    """
    from selfgym.run.rollout import RolloutConfig, run_rollouts

    config = RolloutConfig(group_size=k, max_concurrent=max_concurrent, seed=seed, progress=progress,
                           stuck_after=stuck_after)
    result = (rollouts or run_rollouts)(env, agent, tasks, config, **rollout_kwargs)
    return summarise(result.trajectories, {t.id: t for t in tasks}, k), result
