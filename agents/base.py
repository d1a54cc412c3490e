"""The agent interfaces, the two agents that need no model (``scripted``, ``random``) and ``make_agent``.

An agent sees one observation at a time and returns a ``Completion`` (the action text plus, for
LLM agents, the token-exact record). Scripted and random agents leave the token fields empty.

A ``BatchAgent`` acts in many episodes at once (the rollout engine's interface): the LLM agent
answers all of a step's observations with one ``generate`` call; ``SequentialAgents`` adapts any
per-env ``Agent`` (scripted, random, third-party) to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import gymnasium
import numpy as np

from selfgym.envs.base import llm_env
from selfgym.errors import ConfigError
from selfgym.types import Completion

__all__ = ["Agent", "BatchAgent", "RandomAgent", "ScriptedAgent", "SequentialAgents", "env_action", "make_agent"]


@runtime_checkable
class Agent(Protocol):
    """Acts in one episode at a time.

    ``reset`` is called with the first observation and the reset info (task, instructions, tools);
    ``act`` with each observation after it, including the first.
    """

    name: str

    def reset(self, observation: str, info: dict[str, Any]) -> None: ...

    def act(self, observation: str, info: dict[str, Any]) -> Completion: ...


class ScriptedAgent:
    """Plays the env's oracle (``LLMEnv.oracle_action``): the reference solution, for tests and demos."""

    name = "scripted"

    def __init__(self, env: gymnasium.Env) -> None:
        self.env = env.unwrapped

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        pass

    def act(self, observation: str, info: dict[str, Any]) -> Completion:
        return Completion(text=llm_env(self.env).oracle_action())


class RandomAgent:
    """Random text actions: short strings from the env's action space (fuzzing, baselines)."""

    name = "random"

    def __init__(self, env: gymnasium.Env, *, seed: int | None = None, max_chars: int = 64) -> None:
        self.space = env.action_space
        self.rng = np.random.default_rng(seed)
        self.max_chars = max_chars

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        pass

    def act(self, observation: str, info: dict[str, Any]) -> Completion:
        length = int(self.rng.integers(0, self.max_chars + 1))
        chars = getattr(self.space, "character_list", None)
        if not chars:
            return Completion(text=str(self.space.sample()))
        return Completion(text="".join(chars[i] for i in self.rng.integers(0, len(chars), size=length)))


@runtime_checkable
class BatchAgent(Protocol):
    """Acts in many episodes at once.

    ``start`` begins an episode and returns the agent's handle for it; ``act_batch`` answers one
    observation per handle (infos are the latest step infos); ``env_action`` is the text sent to
    the env for a reply and the reason it could not be extracted, if any. A handle may have a
    ``memory_ids`` attribute: the ids of the memory items in its prompts, by kind.
    """

    name: str
    policy_id: str

    def start(self, observation: str, info: dict[str, Any], env: gymnasium.Env | None = None) -> Any: ...

    def act_batch(self, episodes: Sequence[Any], observations: Sequence[str],
                  infos: Sequence[dict[str, Any]] | None = None, *,
                  seed: int | None = None) -> list[Completion]: ...

    def env_action(self, completion: Completion) -> tuple[str, str | None]: ...


def env_action(agent: Agent | BatchAgent, completion: Completion) -> tuple[str, str | None]:
    """The text an agent sends to the env for ``completion``, and why it could not be extracted.

    An agent may define ``env_action`` (the LLM agent extracts the action from its reply, e.g. from
    ``<action>`` tags); for any other agent the whole reply is the action.
    """
    extract = getattr(agent, "env_action", None)
    return extract(completion) if extract is not None else (completion.text, None)


@dataclass
class _Seat:
    agent: Agent

    @property
    def memory_ids(self) -> dict[str, list[str]] | None:
        """The memory ids of the agent's current episode (where ``run_episode`` reads them too)."""
        return getattr(getattr(self.agent, "episode", None), "memory_ids", None)


class SequentialAgents:
    """A ``BatchAgent`` made of one ``Agent`` per env, asked one after the other.

    Args:
        factory: builds the agent for an env (called once per env, then reused across episodes).
        name: the agent's name (default: the first agent's).
    """

    def __init__(self, factory: Callable[[gymnasium.Env], Agent], name: str | None = None) -> None:
        self.factory = factory
        self.name = name or ""
        self.policy_id = self.name
        self._agents: dict[int, Agent] = {}

    def start(self, observation: str, info: dict[str, Any], env: gymnasium.Env | None = None) -> _Seat:
        if env is None:
            raise ValueError("SequentialAgents.start needs the env (each env gets its own agent)")
        agent = self._agents.get(id(env))
        if agent is None:
            agent = self._agents[id(env)] = self.factory(env)
            self.name = self.name or agent.name
            self.policy_id = self.policy_id or agent.name
        agent.reset(observation, info)
        return _Seat(agent)

    def act_batch(self, episodes: Sequence[_Seat], observations: Sequence[str],
                  infos: Sequence[dict[str, Any]] | None = None, *, seed: int | None = None) -> list[Completion]:
        infos = infos or [{} for _ in episodes]
        return [seat.agent.act(o, i) for seat, o, i in zip(episodes, observations, infos, strict=True)]

    def env_action(self, completion: Completion) -> tuple[str, str | None]:
        return completion.text, None


POLICY_OPTIONS = ("dtype", "prefix_cache_mb", "max_batch_size", "device")  # TransformersConfig fields a spec may set


def _llm_options(query: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``max_tokens=64&temperature=0.7&dtype=bfloat16`` -> ``AgentConfig`` keyword arguments (sampling
    ones grouped) and the policy's (``POLICY_OPTIONS``)."""
    import dataclasses
    import urllib.parse

    from .llm import AgentConfig
    from .policy import SamplingParams

    sampling_keys = {f.name for f in dataclasses.fields(SamplingParams)}
    agent_keys = {f.name for f in dataclasses.fields(AgentConfig)} - {"sampling"}
    config: dict[str, Any] = {}
    sampling: dict[str, Any] = {}
    policy: dict[str, Any] = {}
    for key, raw in urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=True):
        value: Any = raw
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                continue
        if key in sampling_keys:
            sampling[key] = (raw,) if key == "stop" else value
        elif key in agent_keys:
            config[key] = raw if key in ("system_prompt", "action_format") else value
        elif key in POLICY_OPTIONS:
            policy[key] = value
        else:
            known = ", ".join(sorted(sampling_keys | agent_keys | set(POLICY_OPTIONS)))
            raise ConfigError(f"unknown llm agent option {key!r}; options: {known}")
    if sampling:
        config["sampling"] = SamplingParams(**sampling)
    return config, policy


def make_agent(name: str, env: gymnasium.Env | None = None, *, seed: int | None = None, **config: Any) -> Any:
    """Build an agent by name.

    - ``scripted``: plays the env's oracle; ``random``: random text (both need ``env``);
    - ``llm``: the LLM agent on the embedded model (SmolLM2-135M-Instruct);
    - ``llm:<policy spec>``: the LLM agent on another policy: a checkpoint or LoRA adapter dir,
      a ``.gguf`` file, or ``openai:<base_url>[#model]`` for an OpenAI-compatible server.

    Agent, sampling and policy options may follow the spec as a query string, e.g.
    ``llm:embedded?max_tokens=64&temperature=0.7&max_prompt_tokens=2048&dtype=bfloat16`` (policy
    options: ``POLICY_OPTIONS``, for a local model). ``config`` goes to ``AgentConfig`` too. The
    policy of an ``llm`` spec is loaded once per process (per policy options) and shared.
    """
    if name in ("scripted", "random"):
        if env is None:
            raise ConfigError(f"the {name} agent needs the env it plays in")
        return ScriptedAgent(env) if name == "scripted" else RandomAgent(env, seed=seed)
    if name == "llm" or name.startswith(("llm:", "llm?")):
        from .llm import AgentConfig, LLMAgent
        from .policy import make_policy

        spec, _, query = name[3:].lstrip(":").partition("?")
        agent_options, policy_options = _llm_options(query) if query else ({}, {})
        if policy_options and spec.startswith("openai:"):
            raise ConfigError(f"{', '.join(policy_options)} set a local model; the server at {spec} has its own")
        return LLMAgent(make_policy(spec or "embedded", **policy_options), AgentConfig(**{**agent_options, **config}))
    raise ConfigError(f"unknown agent {name!r}; choose scripted, random, llm or llm:<model dir | openai:URL>")
