"""The agent interface, and the two agents that need no model: ``scripted`` and ``random``.

An agent sees one observation at a time and returns a ``Completion`` (the action text plus, for
LLM agents, the token-exact record). Scripted and random agents leave the token fields empty.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import gymnasium
import numpy as np

from selfgym.errors import ConfigError
from selfgym.types import Completion

__all__ = ["Agent", "RandomAgent", "ScriptedAgent", "make_agent"]


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
        return Completion(text=self.env.oracle_action())


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


def make_agent(name: str, env: gymnasium.Env, *, seed: int | None = None) -> Agent:
    """Build an agent by name (``scripted`` or ``random``)."""
    if name == "scripted":
        return ScriptedAgent(env)
    if name == "random":
        return RandomAgent(env, seed=seed)
    raise ConfigError(f"unknown agent {name!r}; choose 'scripted' or 'random'")
