"""What runs inside a Ray env worker: the worker actor and the agent factories it builds agents with.

A worker (``EnvWorker``) holds one env and one agent and plays whole episodes with ``run_episode``;
the driver's side (``selfgym.run.distributed``) starts, feeds and replaces them. This module imports
no model stack at module level: every worker imports it, and the agent factories load what they
need (a policy, ``make_agent``) inside the worker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium

from selfgym.agents.base import Agent, BatchAgent, SequentialAgents
from selfgym.errors import ConfigError, InfrastructureError
from selfgym.run.episode import STUCK_AFTER, end_trajectory, run_episode
from selfgym.run.rollout import AgentSpec, _Request
from selfgym.types import Trajectory

__all__ = ["EnvWorker", "NamedAgentFactory", "PolicyAgentFactory"]


@dataclass(frozen=True)
class PolicyAgentFactory:
    """Builds the LLM agent inside a worker: ``spec`` is a policy spec (``openai:<base_url>[#model]``
    for an OpenAI-compatible server, or a checkpoint dir), loaded once per worker process."""

    spec: str
    config: Any  # AgentConfig
    device: str | None = None
    dtype: str | None = None

    def __call__(self, env: gymnasium.Env) -> Agent:
        from selfgym.agents.factory import make_policy
        from selfgym.agents.llm import LLMAgent

        local = {"device": self.device, "dtype": self.dtype}
        options = {} if self.spec.startswith("openai:") else {k: v for k, v in local.items() if v is not None}
        return LLMAgent(make_policy(self.spec, **options), self.config)


@dataclass(frozen=True)
class NamedAgentFactory:
    """Builds ``selfgym.agents.make_agent(name)`` inside a worker (``scripted``, ``random``, ``llm:<spec>``)."""

    name: str
    seed: int | None = None

    def __call__(self, env: gymnasium.Env) -> Agent:
        from selfgym.agents import make_agent

        if self.name in ("scripted", "random"):
            return make_agent(self.name, env, seed=self.seed)  # type: ignore[no-any-return]
        return make_agent(self.name)  # type: ignore[no-any-return]


def _episode_agent(spec: AgentSpec, env: gymnasium.Env) -> Agent:
    """The one-episode-at-a-time agent a worker plays with."""
    if isinstance(spec, SequentialAgents):
        return spec.factory(env)
    if isinstance(spec, BatchAgent):
        if hasattr(spec, "act") and hasattr(spec, "reset"):
            return spec  # type: ignore[return-value]  # the LLM agent plays single episodes too
        raise ConfigError(f"ray rollouts need an agent that plays one episode at a time (reset/act), "
                          f"got {type(spec).__name__}")
    return spec(env)


def _agent_name(agent: Any) -> str:
    return getattr(agent, "policy_id", "") or getattr(agent, "name", "")


def _aborted(request: _Request, env_id: str, exc: BaseException, fields: dict[str, Any]) -> Trajectory:
    """The record of an episode that never got to play (or died with its worker)."""
    fields = dict(fields)
    info = {**fields.pop("info", {}), "group": request.group}
    traj = Trajectory(task_id=request.task.id, env_id=env_id, seed=request.seed, attempt=request.attempt,
                      info=info, **fields)
    end_trajectory(traj, "", None, time.perf_counter(), exc)
    return traj


class EnvWorker:
    """One env and one agent in a Ray actor; ``play`` runs a whole episode and returns its trajectory.

    A pool kept across calls (``RayRollouts(keep_workers=True)``) ``configure``s its workers for
    each call: an env whose key is unchanged stays as it is (its browser, sandbox and server
    connection warm); a new agent is built when its key, or the env, changed.
    """

    def __init__(self, make_env: Callable[[], gymnasium.Env], agent: AgentSpec, env_id: str,
                 keys: tuple[str, str] = ("", "")) -> None:
        self.env: gymnasium.Env | None = None
        self.agent: Agent | None = None
        self.broken: InfrastructureError | None = None
        self.keys = ("", "")
        self.configure(make_env, agent, env_id, keys)

    def configure(self, make_env: Callable[[], gymnasium.Env], agent: AgentSpec, env_id: str,
                  keys: tuple[str, str]) -> int:
        """Play ``make_env``'s env with ``agent`` from now on (an empty key never matches); the pid."""
        env_key, agent_key = keys
        self.env_id = env_id
        if self.env is None or not env_key or env_key != self.keys[0]:
            self.close()
            self.env, self.agent, self.broken = None, None, None
            try:
                self.env = make_env()
            except InfrastructureError as exc:  # e.g. its env server is down: each episode ends aborted
                self.broken = exc
        if self.env is not None and (self.agent is None or not agent_key or agent_key != self.keys[1]):
            self.agent = _episode_agent(agent, self.env)
        self.keys = (env_key, agent_key) if self.env is not None else ("", "")
        return os.getpid()

    def pid(self) -> int:
        return os.getpid()

    def play(self, request: _Request, fields: dict[str, Any], stuck_after: int = STUCK_AFTER) -> Trajectory:
        if self.env is None or self.agent is None:
            return _aborted(request, self.env_id, self.broken or InfrastructureError("no env"), fields)
        fields = dict(fields)
        info = {**fields.pop("info", {}), "group": request.group}
        try:
            traj = run_episode(self.env, self.agent, seed=request.seed, task=request.task,
                               attempt=request.attempt, info=info, stuck_after=stuck_after, **fields)
        except InfrastructureError as exc:  # the reset failed (a lost env server): aborted, not raised
            return _aborted(request, self.env_id, exc, fields)
        traj.policy_id = traj.policy_id or _agent_name(self.agent)
        return traj

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None
