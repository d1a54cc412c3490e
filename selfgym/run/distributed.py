"""Rollouts on Ray: env workers as actors playing whole episodes, the driver the only store writer.

``ray_rollouts`` has ``run_rollouts``' signature and contract. Each worker (a Ray actor) holds one env
(local, or a ``RemoteEnv`` on an env server) and one agent (built in the worker from a picklable
factory: a scripted agent in tests, an LLM agent on an OpenAI-compatible endpoint in a cluster), and
plays one episode at a time with ``run_episode``; the trajectory comes back as data and the driver
writes it. Episode ``i`` of a call resets with ``seed + i``, as in the in-process engine, so a
deterministic agent plays the same episodes on both.

Failures follow the error policy: an ``InfrastructureError`` in a worker (a dead sandbox or env
server) aborts that episode there; a worker that dies (``RayActorError``: the process was killed,
its node lost) aborts the episode it was playing, on the driver, and a fresh worker takes its
place. Aborted episodes are stored, counted, never scored. A task's attempts are written in attempt
order, so the stored attempts of a task are always ``0..n-1`` and a resume that starts from the
count of stored attempts (the loop's) neither skips nor repeats one.

Ray is optional (the ``ray`` extra) and imported only when a call starts its workers. The
workers' side (the actor and the agent factories) is ``selfgym.run.workers``.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gymnasium

from selfgym.errors import ConfigError, InfrastructureError
from selfgym.run.rollout import (  # the engine's own task and request rules, so both play the same episodes
    AgentSpec,
    RolloutConfig,
    RolloutResult,
    _progress,
    _Request,
    _resolve_tasks,
    run_rollouts,
)
from selfgym.run.workers import EnvWorker, NamedAgentFactory, PolicyAgentFactory, _aborted, _agent_name
from selfgym.store import Store
from selfgym.types import Task, Trajectory

if TYPE_CHECKING:  # not imported at run time: no model stack for what imports this module
    from selfgym.run.assemble import LoopRun

__all__ = ["EnvWorker", "NamedAgentFactory", "PolicyAgentFactory", "RayConfig", "RayRollouts", "RolloutsFn", "ensure_ray", "ray_rollouts",
           "rollout_backend"]

RolloutsFn = Callable[..., RolloutResult]
"""A function called like ``run_rollouts`` (``run_rollouts`` itself, or a ``RayRollouts``)."""


@dataclass(frozen=True, kw_only=True)
class RayConfig:
    """Where the env workers run."""

    workers: int = field(default=2, metadata={"help": "env workers (Ray actors), one episode in flight each"})
    address: str | None = field(
        default=None, metadata={"help": "Ray cluster address (default: $RAY_ADDRESS, else a local instance)"})
    cpus_per_worker: float = field(default=1.0, metadata={"help": "CPUs each worker reserves"})
    max_replacements: int | None = field(
        default=None, metadata={"help": "dead workers replaced per call (default: as many as workers)"})
    env_servers: tuple[str, ...] = field(
        default=(), metadata={"help": "env servers (ws://host:port) for an env id: worker i plays on server i mod n"})

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"RayConfig.workers must be >= 1, got {self.workers}")
        if self.cpus_per_worker < 0:
            raise ConfigError(f"RayConfig.cpus_per_worker must be >= 0, got {self.cpus_per_worker}")


def ensure_ray(config: RayConfig) -> Any:
    """Connect to the cluster (``config.address`` or ``$RAY_ADDRESS``) or start a local instance
    (at least 2 CPUs, no dashboard, no usage statistics); return the ``ray`` module."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("rollout backend 'ray' needs Ray: pip install 'selfgym[ray]'") from exc
    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report leaves the machine
    address = config.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
    else:
        cpus = max(2, math.ceil(config.workers * config.cpus_per_worker))
        ray.init(num_cpus=cpus, include_dashboard=False)
    return ray


class _Writer:
    """The driver's side: writes each task's attempts in attempt order and calls the hooks."""

    def __init__(self, store: Store | None, on_trajectory: Callable[[Trajectory], None] | None,
                 on_step_end: Callable[[list[tuple[Task, Trajectory]]], None] | None, first_attempt: int) -> None:
        self.first_attempt = first_attempt
        self.store, self.on_trajectory, self.on_step_end = store, on_trajectory, on_step_end
        self.done: dict[int, Trajectory] = {}
        self.held: dict[int, dict[int, tuple[_Request, Trajectory]]] = {}
        self.next_attempt: dict[int, int] = {}
        self.stored_tasks: set[str] = set()

    def add(self, request: _Request, traj: Trajectory) -> None:
        self.done[request.index] = traj
        self.held.setdefault(request.group, {})[request.attempt] = (request, traj)
        group = self.held[request.group]
        attempt = self.next_attempt.setdefault(request.group, self.first_attempt)
        while attempt in group:
            self._write(*group.pop(attempt))
            attempt = self.next_attempt[request.group] = attempt + 1

    def _write(self, request: _Request, traj: Trajectory) -> None:
        if self.store is not None:
            if traj.task_id not in self.stored_tasks:
                self.store.add_tasks([request.task], run_id=traj.run_id or None)
                self.stored_tasks.add(traj.task_id)
            self.store.add_trajectory(traj)
        if self.on_trajectory is not None:
            self.on_trajectory(traj)
        if self.on_step_end is not None:
            self.on_step_end([(request.task, traj)])


class RayRollouts:
    """Rollouts on a pool of Ray env workers, called like ``run_rollouts``.

    By default the workers are started by each call (the env and agent are the call's) and stopped
    at its end. With ``keep_workers`` they outlive the call: the next call reuses their processes
    (no actor start, imports done), keeps each env whose factory is the same (pickled alike) and
    rebuilds only what changed (a new checkpoint's agent, say); a worker that died in between is
    replaced before any episode is sent to it. ``close()`` (or ``with``) stops them. ``pids`` lists
    the live workers' process ids during a call, and after it while they are kept.
    """

    def __init__(self, config: RayConfig | None = None, *, keep_workers: bool = False) -> None:
        self.config = config or RayConfig()
        self.keep_workers = keep_workers
        self.pids: list[int] = []
        self._kept: _Pool | None = None

    def close(self) -> None:
        """Stop the kept workers (a call after this starts new ones)."""
        kept, self._kept = self._kept, None
        if kept is not None:
            kept.close()

    def __enter__(self) -> RayRollouts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, env: str | Callable[[], gymnasium.Env], agent: AgentSpec, tasks: Sequence[Task | str] | int,
                 config: RolloutConfig | None = None, *, store: Store | None = None,
                 on_trajectory: Callable[[Trajectory], None] | None = None,
                 on_step_end: Callable[[list[tuple[Task, Trajectory]]], None] | None = None,
                 env_kwargs: dict[str, Any] | None = None, first_attempt: int = 0,
                 **trajectory_fields: Any) -> RolloutResult:
        """Run ``group_size`` attempts of each task on the workers (see ``run_rollouts``)."""
        ray = ensure_ray(self.config)
        config = config or RolloutConfig()
        env_kwargs = dict(env_kwargs or {})
        started = time.perf_counter()
        probe = self._env_factory(env, env_kwargs, 0)()  # tasks resolved (and sampled) as the engine does
        try:
            chosen = _resolve_tasks(tasks, probe, config)
            env_name = probe.spec.id if probe.spec else type(probe.unwrapped).__name__
        finally:
            probe.close()
        pending = [_Request(index=i * config.group_size + a, task=task, group=i, attempt=first_attempt + a,
                            seed=config.seed + i * config.group_size + a)
                   for i, task in enumerate(chosen) for a in range(config.group_size)]
        pending.reverse()  # popped from the end: the engine's order
        need, have = min(self.config.workers, len(pending)) * self.config.cpus_per_worker, ray.cluster_resources()
        if need > have.get("CPU", 0.0):  # the workers would wait for CPUs forever
            raise ConfigError(f"{self.config.workers} env workers x {self.config.cpus_per_worker:g} CPUs need {need:g} "
                              f"CPUs, the Ray cluster has {have.get('CPU', 0.0):g}; lower the workers or "
                              "RayConfig.cpus_per_worker (0 for workers that mostly wait on servers)")
        writer = _Writer(store, on_trajectory, on_step_end, first_attempt)
        pool, self._kept = self._kept or _Pool(self, ray), None
        pool.configure(lambda index: self._env_factory(env, env_kwargs, index), agent, env_name, trajectory_fields,
                       config.stuck_after, _keys(ray, (env, env_kwargs, self.config.env_servers), agent))
        try:
            pool.play(pending, writer, config.progress)
        except BaseException:
            pool.close()
            raise
        if self.keep_workers:
            self._kept = pool
        else:
            pool.close()
        trajectories = [writer.done[i] for i in sorted(writer.done)]
        return RolloutResult(trajectories=trajectories,
                             generated_tokens=sum(len(turn.completion_ids) for t in trajectories for turn in t.turns),
                             wall_s=time.perf_counter() - started)

    def _env_factory(self, env: str | Callable[[], gymnasium.Env], env_kwargs: dict[str, Any],
                     index: int) -> Callable[[], gymnasium.Env]:
        """The env of worker ``index``: on env server ``index mod n`` when the config names servers."""
        import selfgym

        servers = self.config.env_servers
        if not isinstance(env, str):
            if servers:
                raise ConfigError("RayConfig.env_servers needs an env id, not an env factory")
            return env
        remote = {"remote": servers[index % len(servers)]} if servers else {}
        return functools.partial(selfgym.make, env, **remote, **env_kwargs)

    @staticmethod
    def _pids(ray: Any, actors: list[Any]) -> list[int]:
        pids = []
        for actor in actors:
            try:
                pids.append(int(ray.get(actor.pid.remote())))
            except ray.exceptions.RayActorError:
                pass  # died meanwhile; its episode ends aborted when the driver reads it
        return pids


def _keys(ray: Any, env: Any, agent: AgentSpec) -> tuple[str, str]:
    """What identifies a call's env and agent for reuse: digests of their pickles ('' if they do not pickle)."""
    keys = []
    for part in (env, agent):
        try:
            keys.append(hashlib.sha256(ray.cloudpickle.dumps(part)).hexdigest())
        except Exception:  # noqa: BLE001 - then never reused; the call itself reports what does not pickle
            keys.append("")
    return keys[0], keys[1]


class _Pool:
    """The workers of a call (kept for the next ones with ``keep_workers``): configured for the call,
    fed one episode at a time, replaced when they die, stopped."""

    def __init__(self, owner: RayRollouts, ray: Any) -> None:
        self.owner, self.ray = owner, ray
        self.worker_cls = ray.remote(num_cpus=owner.config.cpus_per_worker, max_restarts=0,
                                     scheduling_strategy="SPREAD")(EnvWorker)  # over the nodes
        self.started = 0
        self.actors: list[Any] = []
        self.indexes: dict[Any, int] = {}  # actor -> its worker number (the env server it plays on)
        self.in_flight: dict[Any, tuple[Any, _Request]] = {}

    def configure(self, env_for: Callable[[int], Callable[[], gymnasium.Env]], agent: AgentSpec, env_name: str,
                  fields: dict[str, Any], stuck_after: int, keys: tuple[str, str]) -> None:
        """This call's env, agent and episode fields (the kept workers are reconfigured by ``play``)."""
        self.env_for, self.agent, self.env_name, self.fields = env_for, agent, env_name, fields
        self.stuck_after, self.keys = stuck_after, keys
        replacements = self.owner.config.max_replacements
        self.replacements = self.owner.config.workers if replacements is None else replacements

    def start_worker(self) -> Any:
        index = self.started
        actor = self.worker_cls.remote(self.env_for(index), self.agent, self.env_name, self.keys)  # spread over servers
        self.started += 1
        self.actors.append(actor)
        self.indexes[actor] = index
        return actor

    def reconfigure(self) -> None:
        """The kept workers play this call's env and agent; the dead ones are dropped (and replaced)."""
        calls = [(actor, actor.configure.remote(self.env_for(self.indexes[actor]), self.agent, self.env_name, self.keys))
                 for actor in self.actors]
        for actor, ref in calls:
            try:
                self.ray.get(ref)
            except self.ray.exceptions.RayActorError:  # died while idle: no episode was lost
                self.actors.remove(actor)
                self.indexes.pop(actor, None)

    def dispatch(self, actor: Any, pending: list[_Request]) -> None:
        if pending:
            request = pending.pop()
            self.in_flight[actor.play.remote(request, self.fields, self.stuck_after)] = (actor, request)

    def play(self, pending: list[_Request], writer: _Writer, progress_bar: bool) -> None:
        """Every pending episode to the workers; each result (or loss) to the writer."""
        self.reconfigure()
        while len(self.actors) < min(self.owner.config.workers, len(pending)):
            self.start_worker()
        # a worker that cannot start (a bug in its env or agent, or they do not unpickle there) raises
        self.owner.pids = [int(pid) for pid in self.ray.get([actor.pid.remote() for actor in self.actors])]
        for actor in list(self.actors):
            self.dispatch(actor, pending)
        with _progress(progress_bar) as progress:
            bar = progress.add_task("rollouts", total=len(pending) + len(self.in_flight), solved=0, tps=0.0)
            while self.in_flight:
                [ref], _ = self.ray.wait(list(self.in_flight), num_returns=1)
                actor, request = self.in_flight.pop(ref)
                try:
                    traj = self.ray.get(ref)
                except self.ray.exceptions.RayActorError as exc:  # the worker died: its episode is lost
                    writer.add(request, _aborted(request, self.env_name, exc, self.fields))
                    actor = self.replace(actor, pending)
                else:
                    traj.policy_id = traj.policy_id or _agent_name(self.agent)
                    writer.add(request, traj)
                if actor is not None:
                    self.dispatch(actor, pending)
                if not self.in_flight and pending:  # every worker is gone and none may replace them
                    lost = InfrastructureError("no env worker left (all died)")
                    while pending:
                        request = pending.pop()
                        writer.add(request, _aborted(request, self.env_name, lost, self.fields))
                progress.update(bar, completed=len(writer.done),
                                solved=sum(t.success for t in writer.done.values()), tps=0.0)

    def replace(self, dead: Any, pending: list[_Request]) -> Any:
        """A fresh worker for a dead one while replacements last and episodes wait, else None."""
        self.actors.remove(dead)
        self.indexes.pop(dead, None)
        actor = None
        if self.replacements > 0 and pending:
            self.replacements -= 1
            actor = self.start_worker()
        self.owner.pids = self.owner._pids(self.ray, self.actors)
        return actor

    def close(self) -> None:
        for actor in self.actors:
            try:
                self.ray.kill(actor)
            except Exception:  # noqa: BLE001 - Ray shut down already: nothing left to stop
                pass
        self.actors, self.indexes = [], {}
        self.owner.pids = []


def ray_rollouts(env: str | Callable[[], gymnasium.Env], agent: AgentSpec, tasks: Sequence[Task | str] | int,
                 config: RolloutConfig | None = None, *, ray_config: RayConfig | None = None,
                 **kwargs: Any) -> RolloutResult:
    """``run_rollouts`` on Ray workers (``RayRollouts(ray_config)(env, agent, tasks, config, **kwargs)``)."""
    return RayRollouts(ray_config)(env, agent, tasks, config, **kwargs)


def _driver_weights(run: LoopRun) -> str:
    """The policy spec of the weights the driver generates with: its latest checkpoint, or the base model."""
    for checkpoint in reversed(run.store.checkpoints(run.run_id)):
        if checkpoint["id"] == run.checkpoint_id:
            return str(checkpoint["path"])
    return run.config.policy.model


def rollout_backend(run: LoopRun, *, dtype: str | None = None) -> RolloutsFn:
    """The rollout function of a run's stages (``[rollout] backend``): ``run_rollouts`` in-process, or
    Ray workers whose agents have the stage's agent config and generate through ``rollout.policy_url``
    (or load the driver's current weights, in ``dtype`` when given, else ``policy.dtype``)."""
    section = run.config.rollout
    if section.backend == "local":
        return run_rollouts
    if run.ray_rollouts is None:  # one pool for the whole run: its workers outlive each stage's call
        run.ray_rollouts = RayRollouts(RayConfig(workers=section.ray_workers, env_servers=tuple(section.env_servers)),
                                       keep_workers=True)
    pool = run.ray_rollouts
    spec = f"openai:{section.policy_url}" if section.policy_url else _driver_weights(run)
    device, dtype = run.config.policy.device, dtype or run.config.policy.dtype

    def rollouts(env: Any, agent: Any, tasks: Any, config: RolloutConfig | None = None, **kwargs: Any) -> RolloutResult:
        if section.env_servers:  # the run's env id on the servers, which hold its arguments (--env-arg)
            env, kwargs["env_kwargs"] = run.config.env.id, {}
        return pool(env, PolicyAgentFactory(spec, agent.config, device, dtype), tasks, config, **kwargs)

    return rollouts
