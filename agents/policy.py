"""The policy interface: one batched ``generate`` over LLM backends.

A policy turns a batch of chat prompts into ``Completion``s that are token-exact: ``prompt_ids``
are the tokens the model was fed, ``completion_ids`` the tokens it produced (the end-of-sequence
token included when it stopped on one), ``logprobs`` one per completion token when the backend
gives them. Trainers re-score these ids; they never re-tokenise the text.

Backends: ``TransformersPolicy`` (``agents/hf.py``), ``OpenAIPolicy`` (``agents/openai_policy.py``).
``make_policy(spec)`` (in ``factory.py``) builds one from a short string.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol, runtime_checkable

from selfgym.errors import ConfigError, InfrastructureError
from selfgym.types import Completion, Message, SamplingParams

__all__ = [
    "ChatMessage",
    "GenerationStats",
    "MeteredPolicy",
    "Policy",
    "PolicyError",
    "SamplingParams",
    "TrainablePolicy",
    "cut_at_stop",
    "to_chat",
]

ChatMessage = Message | Mapping[str, Any]


class PolicyError(InfrastructureError):
    """The policy backend failed (server down, out of memory). Episodes waiting on it are aborted."""


@runtime_checkable
class Policy(Protocol):
    """An LLM behind one batched call.

    ``name`` identifies the weights (it becomes ``Trajectory.policy_id``). ``generate`` returns one
    ``Completion`` per prompt, in order, or raises ``PolicyError`` when the backend fails.
    ``count_tokens`` is the prompt length the messages make (exact where the backend has the
    tokenizer, an estimate otherwise); agents use it to keep prompts within a budget.
    """

    name: str

    def generate(self, prompts: Sequence[Sequence[ChatMessage]], params: SamplingParams) -> list[Completion]: ...

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int: ...


@runtime_checkable
class TrainablePolicy(Policy, Protocol):
    """A policy whose weights live in this process, so a trainer can update them.

    ``model`` and ``tokenizer`` are what a trainer trains; ``use_model`` makes the policy generate with
    the trained model from then on (the runner calls it after each trainer step).
    """

    model: Any
    tokenizer: Any

    def use_model(self, model: Any) -> None: ...


@dataclass(frozen=True)
class GenerationStats:
    """What a policy's generation has cost since it was made (counters; subtract two snapshots for a stage).

    ``prefilled_tokens`` were run through the model as prompt, ``cached_tokens`` were prompt tokens
    whose keys/values were reused from an earlier call (prefix reuse), ``generated_tokens`` were
    sampled (before cutting at stop strings), ``model_s`` is wall time inside the backend's generate.
    """

    calls: int = 0
    prompts: int = 0
    prefilled_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    model_s: float = 0.0

    @property
    def prompt_tokens(self) -> int:
        return self.prefilled_tokens + self.cached_tokens

    @property
    def cache_hit_rate(self) -> float:
        """Share of prompt tokens served from the cache (0 when there were none)."""
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    def __add__(self, other: GenerationStats) -> GenerationStats:
        return GenerationStats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __sub__(self, other: GenerationStats) -> GenerationStats:
        return GenerationStats(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    def metrics(self, prefix: str = "policy/") -> dict[str, float]:
        """Flat, namespaced numbers for a console line, the store or a report."""
        out: dict[str, float] = {f"{prefix}{f.name}": getattr(self, f.name) for f in fields(self)}
        out[f"{prefix}cache_hit_rate"] = self.cache_hit_rate
        return out


@runtime_checkable
class MeteredPolicy(Protocol):
    """A policy that counts its work: ``stats()`` is a ``GenerationStats`` snapshot of the totals so far."""

    def stats(self) -> GenerationStats: ...


def to_chat(message: ChatMessage) -> dict[str, Any]:
    """A message as the plain dict chat templates and OpenAI clients take."""
    if isinstance(message, Message):
        return message.to_chat()
    if "role" not in message or "content" not in message:
        raise ConfigError(f"a chat message needs 'role' and 'content', got keys {sorted(message)}")
    return dict(message)


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the first stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text, False) if cut < 0 else (text[:cut], True)


def __getattr__(name: str) -> Any:
    """``make_policy`` (in ``factory.py``), importable from the contract module as before."""
    if name == "make_policy":
        from .factory import make_policy

        return make_policy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
