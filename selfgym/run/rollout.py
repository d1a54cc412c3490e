"""The rollout engine: many (env, task, attempt) episodes at once, one batched policy call per step.

Vector-env style: up to ``max_concurrent`` episodes run side by side, each in its own env copy.
At every step the agent answers all pending observations in one ``act_batch`` call (for the LLM
agent: one ``generate``), then every env takes its action. A finished episode is written to the
store at once, and its env starts the next queued episode in the next step, so the batch stays
full. Tasks come in groups of ``group_size`` attempts (GRPO's groups); episode ``i`` is reset with
seed ``seed + i``.

Turns are recorded by ``selfgym.run.episode.record_turn``, as in ``run_episode``: the observation the agent saw, its reply
(token-exact), the reward, and ``parse_error`` = the env's ``info["action_error"]``. An episode whose
agent is stuck (``RolloutConfig.stuck_after`` identical exchanges in a row) ends there, truncated. An
``InfrastructureError`` (a dead sandbox, a failed policy server) aborts only the episodes it hit:
they are stored as ``aborted``, counted and never scored; the run goes on.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import gymnasium
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from selfgym.agents.base import Agent, BatchAgent, SequentialAgents
from selfgym.envs.base import llm_env
from selfgym.errors import ConfigError, InfrastructureError
from selfgym.run.episode import STUCK_AFTER, end_trajectory, record_turn
from selfgym.seeds import derive_seed
from selfgym.store import Store
from selfgym.types import Task, Trajectory

__all__ = ["RolloutConfig", "RolloutResult", "run_rollouts"]


@dataclass(frozen=True, kw_only=True)
class RolloutConfig:
    """How many episodes run, and how."""

    group_size: int = field(default=1, metadata={"help": "attempts per task (G of GRPO)"})
    max_concurrent: int = field(default=32, metadata={"help": "episodes in flight, one env copy each"})
    seed: int = field(default=0, metadata={"help": "episode i is reset with seed+i; seeds task sampling too"})
    seed_sampling: bool = field(default=True, metadata={"help": "seed the policy's sampler at each step"})
    split: str = field(default="train", metadata={"help": "split to sample tasks from when only a count is given"})
    difficulty: float | None = field(
        default=None, metadata={"help": "difficulty of sampled tasks (default: the env's own setting)"})
    env_workers: int = field(default=1, metadata={"help": "threads stepping envs at once (slow sandboxes)"})
    stuck_after: int = field(default=STUCK_AFTER, metadata={
        "help": "end an episode (truncated) when the same action got the same answer this many times in a row; "
                "0: never"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        for name in ("group_size", "max_concurrent", "env_workers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"RolloutConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.stuck_after < 0 or self.stuck_after == 1:
            raise ConfigError(f"RolloutConfig.stuck_after must be 0 (off) or >= 2, got {self.stuck_after}")


@dataclass
class RolloutResult:
    """The trajectories (in task-major, attempt-minor order) and what generating them cost."""

    trajectories: list[Trajectory]
    policy_calls: int = 0  # batched calls to the policy (in-process engine); 0 where each worker calls its own
    generated_tokens: int = 0
    generate_s: float = 0.0
    wall_s: float = 0.0

    @property
    def steps(self) -> int:
        """Env steps: one per turn of every trajectory, whichever backend played them."""
        return sum(len(t.turns) for t in self.trajectories)

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.wall_s if self.wall_s else 0.0

    @property
    def success_rate(self) -> float:
        scored = [t.success for t in self.trajectories if not t.aborted]
        return sum(scored) / len(scored) if scored else float("nan")

    @property
    def aborted(self) -> int:
        return sum(1 for t in self.trajectories if t.aborted)

    @property
    def stuck(self) -> int:
        """Episodes ended because the agent repeated an exchange (``RolloutConfig.stuck_after``)."""
        return sum(1 for t in self.trajectories if "stuck" in t.info)


@dataclass
class _Request:
    index: int
    task: Task
    group: int
    attempt: int
    seed: int


@dataclass
class _Live:
    request: _Request
    traj: Trajectory
    handle: Any
    observation: str
    info: dict[str, Any]
    started: float


def _resolve_tasks(tasks: Sequence[Task | str] | int, env: gymnasium.Env, config: RolloutConfig) -> list[Task]:
    source = llm_env(env).task_source
    if isinstance(tasks, int):
        rng = np.random.default_rng(config.seed)
        difficulty = config.difficulty
        if difficulty is None:
            difficulty = getattr(env.unwrapped, "difficulty", None)
        return [source.sample(rng, split=config.split, difficulty=difficulty) for _ in range(tasks)]
    return [t if isinstance(t, Task) else source.get(t) for t in tasks]


AgentSpec: TypeAlias = BatchAgent | Callable[[gymnasium.Env], Agent]
"""What ``run_rollouts`` plays with: a ``BatchAgent``, or a factory of one ``Agent`` per env."""


def _as_batch_agent(agent: AgentSpec) -> BatchAgent:
    if isinstance(agent, BatchAgent):
        return agent
    if callable(agent):
        return SequentialAgents(agent)
    raise ConfigError("run_rollouts: agent must be a BatchAgent (act_batch) or a factory env -> Agent")


class _Engine:
    """One call of ``run_rollouts`` (state kept together so each step reads top to bottom)."""

    def __init__(self, make_env: Callable[[], gymnasium.Env], agent: BatchAgent, config: RolloutConfig,
                 store: Store | None, on_trajectory: Callable[[Trajectory], None] | None,
                 on_step_end: Callable[[list[tuple[Task, Trajectory]]], None] | None,
                 fields: dict[str, Any]) -> None:
        self.make_env, self.agent, self.config, self.store = make_env, agent, config, store
        self.on_trajectory, self.on_step_end, self.fields = on_trajectory, on_step_end, fields
        self.envs: list[gymnasium.Env] = []
        self.live: dict[int, _Live] = {}
        self.done: dict[int, Trajectory] = {}
        self.stored_tasks: set[str] = set()
        self.finished_now: list[tuple[Task, Trajectory]] = []
        self.pool = ThreadPoolExecutor(config.env_workers) if config.env_workers > 1 else None
        self.result = RolloutResult(trajectories=[])

    def _map(self, fn: Callable[..., Any], *args: Sequence[Any]) -> list[Any]:
        return list(self.pool.map(fn, *args)) if self.pool else list(map(fn, *args))

    def _new_trajectory(self, request: _Request, env: gymnasium.Env) -> Trajectory:
        fields = dict(self.fields)
        info = {**fields.pop("info", {}), "group": request.group}
        env_id = env.spec.id if env.spec else type(env.unwrapped).__name__
        return Trajectory(task_id=request.task.id, env_id=env_id, seed=request.seed, attempt=request.attempt,
                          info=info, **fields)

    def _reset(self, slot: int, request: _Request) -> tuple[int, _Request, Any, BaseException | None]:
        try:
            return slot, request, self.envs[slot].reset(seed=request.seed, options={"task": request.task}), None
        except InfrastructureError as exc:
            return slot, request, None, exc

    def fill(self, pending: deque[_Request]) -> None:
        """Start queued episodes in every free env."""
        starts = []
        for slot in range(self.config.max_concurrent):
            if not pending:
                break
            if slot in self.live:
                continue
            if slot == len(self.envs):
                self.envs.append(self.make_env())
            starts.append((slot, pending.popleft()))
        if not starts:
            return
        slots, requests = zip(*starts, strict=True)
        for slot, request, reset, error in self._map(self._reset, slots, requests):  # resets may be slow
            traj = self._new_trajectory(request, self.envs[slot])
            if error is not None:
                self._finish(_Live(request, traj, None, "", {}, time.perf_counter()), aborted=error)
                continue
            observation, info = reset
            traj.instructions = info.get("instructions", "")
            handle = self.agent.start(observation, info, self.envs[slot])
            self.live[slot] = _Live(request, traj, handle, observation, info, time.perf_counter())

    def step(self) -> None:
        """One batched policy call for every live episode, then one env step each."""
        slots = sorted(self.live)
        episodes = [self.live[s] for s in slots]
        seed = derive_seed(self.config.seed, "sampling", self.result.policy_calls) if self.config.seed_sampling else None
        start = time.perf_counter()
        try:
            completions = self.agent.act_batch([e.handle for e in episodes], [e.observation for e in episodes],
                                               [e.info for e in episodes], seed=seed)
        except InfrastructureError as exc:
            for slot in slots:
                self._finish(self.live.pop(slot), aborted=exc)
            return
        finally:
            self.result.generate_s += time.perf_counter() - start
            self.result.policy_calls += 1
        actions = [self.agent.env_action(c) for c in completions]
        outcomes = self._map(self._env_step, slots, [a for a, _ in actions])
        for slot, episode, completion, (action, extract_error), outcome in zip(
                slots, episodes, completions, actions, outcomes, strict=True):
            self.result.generated_tokens += len(completion.completion_ids)
            if isinstance(outcome, InfrastructureError):
                self._finish(self.live.pop(slot), aborted=outcome)
                continue
            ended = record_turn(episode.traj, episode.observation, completion, action, extract_error, outcome,
                                stuck_after=self.config.stuck_after)
            episode.observation, episode.info = outcome[0], outcome[4]
            if ended:
                self._finish(self.live.pop(slot))

    def _env_step(self, slot: int, action: str) -> Any:
        try:
            return self.envs[slot].step(action)
        except InfrastructureError as exc:
            return exc

    def _finish(self, episode: _Live, aborted: BaseException | None = None) -> None:
        traj = episode.traj
        traj.policy_id = traj.policy_id or getattr(self.agent, "policy_id", "") or getattr(self.agent, "name", "")
        end_trajectory(traj, episode.observation, getattr(episode.handle, "memory_ids", None), episode.started, aborted)
        if self.store is not None:
            if traj.task_id not in self.stored_tasks:
                self.store.add_tasks([episode.request.task], run_id=traj.run_id or None)
                self.stored_tasks.add(traj.task_id)
            self.store.add_trajectory(traj)
        if self.on_trajectory is not None:
            self.on_trajectory(traj)
        self.done[episode.request.index] = traj
        self.finished_now.append((episode.request.task, traj))

    def close(self) -> None:
        for env in self.envs:
            env.close()
        if self.pool:
            self.pool.shutdown()


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("[bold]rollouts"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[solved]} solved · {task.fields[tps]:.0f} tok/s"),
                    TimeElapsedColumn(), disable=not enabled, transient=False)


def run_rollouts(
    env: str | Callable[[], gymnasium.Env],
    agent: AgentSpec,
    tasks: Sequence[Task | str] | int,
    config: RolloutConfig | None = None,
    *,
    store: Store | None = None,
    on_trajectory: Callable[[Trajectory], None] | None = None,
    on_step_end: Callable[[list[tuple[Task, Trajectory]]], None] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    first_attempt: int = 0,
    **trajectory_fields: Any,
) -> RolloutResult:
    """Run ``group_size`` attempts of each task, many episodes at once.

    Args:
        env: an env id (``selfgym/Guess-v0``) or a factory returning a fresh env.
        agent: a ``BatchAgent`` (``LLMAgent``) or a factory ``env -> Agent`` (``ScriptedAgent``).
        tasks: tasks or task ids, or a count of tasks to sample from ``config.split``.
        store: each trajectory (and its task) is written here the moment its episode ends.
        on_trajectory: called with each trajectory as it ends.
        on_step_end: called after each step with the ``(task, trajectory)`` pairs that ended in it
            (e.g. a ``ReflectionWriter``).
        first_attempt: the ``attempt`` number of each task's first episode here (retries go on
            counting from earlier rounds).
        trajectory_fields: ``Trajectory`` fields for every episode (``run_id``, ``iteration``,
            ``policy_id``, ``info``).
    """
    import selfgym

    config = config or RolloutConfig()
    make_env = (lambda: selfgym.make(env, **(env_kwargs or {}))) if isinstance(env, str) else env
    engine = _Engine(make_env, _as_batch_agent(agent), config, store, on_trajectory, on_step_end,
                     trajectory_fields)
    started = time.perf_counter()
    try:
        engine.envs.append(make_env())
        chosen = _resolve_tasks(tasks, engine.envs[0], config)
        pending = deque(_Request(index=i * config.group_size + a, task=task, group=i, attempt=first_attempt + a,
                                 seed=config.seed + i * config.group_size + a)
                        for i, task in enumerate(chosen) for a in range(config.group_size))
        total = len(pending)
        with _progress(config.progress) as progress:
            bar = progress.add_task("rollouts", total=total, solved=0, tps=0.0)
            while pending or engine.live:
                engine.fill(pending)
                if engine.live:
                    engine.step()
                finished, engine.finished_now = engine.finished_now, []
                if finished and on_step_end is not None:
                    on_step_end(finished)
                elapsed = time.perf_counter() - started
                solved = sum(t.success for t in engine.done.values())
                progress.update(bar, completed=len(engine.done), solved=solved,
                                tps=engine.result.generated_tokens / elapsed if elapsed else 0.0)
    finally:
        engine.close()
    engine.result.trajectories = [engine.done[i] for i in sorted(engine.done)]
    engine.result.wall_s = time.perf_counter() - started
    return engine.result
