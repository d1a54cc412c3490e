"""``LLMAgent``: a policy plus memory, acting in text environments.

The agent builds each prompt (``agents/prompt.py``) from its system prompt, the env's instructions
and tools, the items its retrievers return for the task (skills, reflections) and the episode so
far within a token budget; it calls the policy and returns the token-exact ``Completion``.

Two ways to drive it:

- one episode at a time, as an ``Agent`` (``reset`` / ``act``), e.g. by ``run_episode``;
- many episodes at once (``start`` / ``act_batch``), as the rollout engine does: all pending
  prompts of a step go to the policy in one ``generate`` call.

The reply is recorded as it is (``Turn.action``, the text the ids decode to). What is sent to the
env is ``env_action(reply)``: the reply itself, or with ``action_format="tag"`` the content of
its ``<action>`` tags (a reply without them goes to the env as it is, and the env answers with
its own error).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from selfgym.errors import ConfigError
from selfgym.types import Completion, Task

from .memory import MemoryItem, Retriever
from .policy import Policy, SamplingParams
from .prompt import (
    DEFAULT_SYSTEM_PROMPT,
    ActionFormat,
    clip_text,
    extract_action,
    fit_to_budget,
    system_message,
)

__all__ = ["AgentConfig", "AgentEpisode", "LLMAgent"]


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """How the LLM agent prompts, samples and reads its replies."""

    system_prompt: str = field(default=DEFAULT_SYSTEM_PROMPT, metadata={"help": "start of the system message"})
    action_format: ActionFormat = field(
        default="text", metadata={"help": "text: the reply is the action; tag: the action is in <action> tags"})
    max_prompt_tokens: int = field(default=3072, metadata={"help": "prompt budget; old turns are dropped to fit"})
    drop_step: int = field(default=4, metadata={
        "help": "old turns are dropped this many at a time, so a trimmed prompt keeps its prefix (and the "
                "backend its cached keys) for several turns"})
    max_observation_chars: int = field(default=16000, metadata={"help": "each observation is cut to this length"})
    memory_k: int = field(default=3, metadata={"help": "items taken from each retriever (skills, reflections)"})
    sampling: SamplingParams = field(default_factory=SamplingParams, metadata={"help": "policy sampling"})

    def __post_init__(self) -> None:
        if self.action_format not in ("text", "tag"):
            raise ConfigError(f"AgentConfig.action_format must be 'text' or 'tag', got {self.action_format!r}")
        if self.max_prompt_tokens < 64:
            raise ConfigError(f"AgentConfig.max_prompt_tokens must be >= 64, got {self.max_prompt_tokens}")
        if self.drop_step < 1:
            raise ConfigError(f"AgentConfig.drop_step must be >= 1, got {self.drop_step}")
        if self.memory_k < 0:
            raise ConfigError(f"AgentConfig.memory_k must be >= 0, got {self.memory_k}")


@dataclass(kw_only=True)
class AgentEpisode:
    """What the agent keeps about one episode: its task, retrieved memory and the dialogue so far."""

    task: Task | None
    system: str
    memory: dict[str, list[MemoryItem]] = field(default_factory=dict)
    history: list[tuple[str, str]] = field(default_factory=list)

    @property
    def memory_ids(self) -> dict[str, list[str]]:
        """Ids of the memory items in the prompt, by kind (``Trajectory.memory``)."""
        return {kind: [item.id for item in items] for kind, items in self.memory.items() if items}


class LLMAgent:
    """An agent whose actions come from a ``Policy``.

    Args:
        policy: the LLM backend.
        config: prompt, budget and sampling settings.
        memory: retrievers queried once per episode for the task (skills, reflections).
    """

    name = "llm"

    def __init__(self, policy: Policy, config: AgentConfig | None = None, *,
                 memory: Sequence[Retriever] = ()) -> None:
        self.policy = policy
        self.config = config or AgentConfig()
        self.memory = list(memory)
        self.episode: AgentEpisode | None = None

    @property
    def policy_id(self) -> str:
        return self.policy.name

    def with_memory(self, memory: Sequence[Retriever]) -> LLMAgent:
        """The same policy and config with other retrievers (e.g. plus reflections for a retry)."""
        return LLMAgent(self.policy, self.config, memory=memory)

    def with_policy(self, policy: Policy) -> LLMAgent:
        """The same config and memory generating with another policy (e.g. other weights)."""
        return LLMAgent(policy, self.config, memory=self.memory)

    def with_config(self, **changes: Any) -> LLMAgent:
        return LLMAgent(self.policy, dataclasses.replace(self.config, **changes), memory=self.memory)

    # ------------------------------------------------------------------ batched interface
    def start(self, observation: str, info: dict[str, Any], env: Any = None) -> AgentEpisode:
        """Begin an episode: retrieve memory for the task and write the system message."""
        task = info.get("task")
        memory: dict[str, list[MemoryItem]] = {}
        if isinstance(task, Task) and self.config.memory_k:
            for retriever in self.memory:
                items = list(retriever.retrieve(task, self.config.memory_k))[: self.config.memory_k]
                memory.setdefault(retriever.kind, []).extend(items)
        system = system_message(self.config.system_prompt, info.get("instructions") or "",
                                info.get("tools") or (), memory, self.config.action_format)
        return AgentEpisode(task=task if isinstance(task, Task) else None, system=system, memory=memory)

    def prompt(self, episode: AgentEpisode, observation: str) -> list[dict[str, str]]:
        """The chat for the next action of ``episode``, within the prompt budget."""
        cap = self.config.max_observation_chars
        history = [(clip_text(o, cap), a) for o, a in episode.history]
        return fit_to_budget(episode.system, history, clip_text(observation, cap), self.policy.count_tokens,
                             self.config.max_prompt_tokens, self.config.drop_step)

    def act_batch(self, episodes: Sequence[AgentEpisode], observations: Sequence[str],
                  infos: Sequence[dict[str, Any]] | None = None, *, seed: int | None = None) -> list[Completion]:
        """One action per episode from a single ``generate`` call; each reply joins its episode's history."""
        if len(episodes) != len(observations):
            raise ValueError(f"act_batch: {len(episodes)} episodes but {len(observations)} observations")
        if not episodes:
            return []
        params = self.config.sampling if seed is None else dataclasses.replace(self.config.sampling, seed=seed)
        prompts = [self.prompt(e, o) for e, o in zip(episodes, observations, strict=True)]
        completions = self.policy.generate(prompts, params)
        for episode, observation, completion in zip(episodes, observations, completions, strict=True):
            episode.history.append((observation, completion.text))
        return completions

    def env_action(self, completion: Completion) -> tuple[str, str | None]:
        """The text to send to the env for a reply, and the extraction error if any."""
        return extract_action(completion.text, self.config.action_format)

    # ------------------------------------------------------------------ Agent protocol (one episode)
    def reset(self, observation: str, info: dict[str, Any]) -> None:
        self.episode = self.start(observation, info)

    def act(self, observation: str, info: dict[str, Any]) -> Completion:
        if self.episode is None:
            raise RuntimeError("LLMAgent.act before reset: call reset(observation, info) first")
        return self.act_batch([self.episode], [observation])[0]
