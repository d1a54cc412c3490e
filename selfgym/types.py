"""The records that flow through selfgym: tasks, turns, trajectories, completions.

Every record is a dataclass with a JSON round-trip (``to_dict`` / ``from_dict``). Turns are
token-exact: trainers use ``prompt_ids`` / ``completion_ids`` / ``logprobs`` as the policy saw and
produced them, never a re-tokenisation of the text.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self, runtime_checkable

from selfgym.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "SPLITS",
    "Completion",
    "ExecResult",
    "SamplingParams",
    "TaskSource",
    "Message",
    "Split",
    "Task",
    "Trajectory",
    "Turn",
    "new_id",
]

Split = Literal["train", "heldout", "generated"]
SPLITS: tuple[Split, ...] = ("train", "heldout", "generated")


def new_id(prefix: str = "") -> str:
    """A short random id, unique enough for a run (``prefix`` helps a human read it)."""
    return f"{prefix}{uuid.uuid4().hex[:16]}"


class _Record:
    """JSON round-trip shared by the records below."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"{cls.__name__}.from_dict: unknown keys {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class Task(_Record):
    """One problem an environment can pose.

    ``payload`` holds what the verifier needs (tests, expected state, ...) and must be
    JSON-serialisable. Held-out tasks never enter training data, memory or teacher prompts.
    """

    id: str
    family: str
    prompt: str
    split: Split = "train"
    payload: dict[str, Any] = field(default_factory=dict)
    difficulty: float = 0.0
    source: str = ""
    parent_id: str | None = None

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"Task {self.id!r}: split must be one of {SPLITS}, got {self.split!r}")
        if not 0.0 <= self.difficulty <= 1.0:
            raise ValueError(f"Task {self.id!r}: difficulty must be in [0, 1], got {self.difficulty}")


@dataclass(kw_only=True)
class Message(_Record):
    """One chat message, in the OpenAI / Hugging Face chat format."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    name: str | None = None

    def to_chat(self) -> dict[str, str]:
        """The dict a chat template or an OpenAI client expects."""
        out = {"role": self.role, "content": self.content}
        if self.name is not None:
            out["name"] = self.name
        return out


@dataclass(kw_only=True)
class Completion(_Record):
    """What a policy produced for one prompt.

    ``logprobs`` has one entry per completion token when the backend gives them, else is None.
    ``cached_tokens`` counts the prompt tokens whose keys/values the backend reused from an
    earlier request instead of computing them (0 when it does not say).
    """

    text: str
    prompt_ids: list[int] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    logprobs: list[float] | None = None
    finish_reason: str = "stop"
    latency_s: float = 0.0
    cached_tokens: int = 0

    def __post_init__(self) -> None:
        if self.logprobs is not None and len(self.logprobs) != len(self.completion_ids):
            raise ValueError(
                f"Completion: {len(self.logprobs)} logprobs for {len(self.completion_ids)} completion tokens"
            )


@dataclass(kw_only=True)
class Turn(_Record):
    """One agent step: what it saw, what it did, and the token-exact record of both."""

    observation: str
    action: str
    reward: float = 0.0
    prompt_ids: list[int] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    logprobs: list[float] | None = None
    parse_error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_completion(cls, observation: str, completion: Completion, **kwargs: Any) -> Turn:
        return cls(
            observation=observation,
            action=completion.text,
            prompt_ids=list(completion.prompt_ids),
            completion_ids=list(completion.completion_ids),
            logprobs=None if completion.logprobs is None else list(completion.logprobs),
            **kwargs,
        )


@dataclass(kw_only=True)
class Trajectory(_Record):
    """One episode of one agent on one task. The schema serves training, eval, memory and reports.

    ``aborted`` marks an infrastructure failure (crashed sandbox, dead browser): such an episode is
    counted but never scored or trained on. ``memory`` lists the ids of skills and reflections that
    were in the agent's prompt.
    """

    task_id: str
    env_id: str
    id: str = field(default_factory=lambda: new_id("traj-"))
    policy_id: str = ""
    run_id: str = ""
    iteration: int = 0
    attempt: int = 0
    seed: int | None = None
    instructions: str = ""
    turns: list[Turn] = field(default_factory=list)
    success: bool = False
    total_reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    aborted: str | None = None
    memory: dict[str, list[str]] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    duration_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        data = dict(data)
        turns = [t if isinstance(t, Turn) else Turn.from_dict(t) for t in data.pop("turns", [])]
        return super().from_dict({**data, "turns": turns})

    def messages(self) -> list[dict[str, str]]:
        """The episode as a chat (instructions, observations as user, actions as assistant)."""
        chat = [{"role": "system", "content": self.instructions}] if self.instructions else []
        for turn in self.turns:
            chat.append({"role": "user", "content": turn.observation})
            chat.append({"role": "assistant", "content": turn.action})
        return chat


@dataclass(kw_only=True)
class ExecResult(_Record):
    """The outcome of running code in a sandbox.

    A program that fails, times out or exceeds a limit is a *result* (``exit_code``,
    ``timed_out``, ``oom``); only a broken sandbox raises.
    """

    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool = False
    oom: bool = False
    duration_s: float = 0.0
    signal: int | None = None
    truncated_output: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.oom


@dataclass(frozen=True, kw_only=True)
class SamplingParams:
    """How to sample one completion per prompt (the OpenAI / vLLM names and meanings)."""

    max_tokens: int = field(default=256, metadata={"help": "most new tokens per completion"})
    temperature: float = field(default=1.0, metadata={"help": "0 means greedy decoding"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass (1 = off)"})
    top_k: int = field(default=0, metadata={"help": "keep the k most likely tokens (0 = off)"})
    stop: tuple[str, ...] = field(default=(), metadata={"help": "stop strings; the text ends before them"})
    seed: int | None = field(default=None, metadata={"help": "seed of the sampler (None: not reseeded)"})
    logprobs: bool = field(default=True, metadata={"help": "record the log-probability of each new token"})

    def __post_init__(self) -> None:
        if isinstance(self.stop, str | list):
            object.__setattr__(self, "stop", (self.stop,) if isinstance(self.stop, str) else tuple(self.stop))
        if self.max_tokens < 1:
            raise ConfigError(f"SamplingParams.max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ConfigError(f"SamplingParams.temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ConfigError(f"SamplingParams.top_k must be >= 0 (0 = off), got {self.top_k}")
        if any(not s for s in self.stop):
            raise ConfigError("SamplingParams.stop: stop strings must be non-empty")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@runtime_checkable
class TaskSource(Protocol):
    """Yields tasks per split.

    ``sample`` draws with the env's generator, so ``reset(seed=s)`` is reproducible;
    ``tasks`` lists a split in a fixed order (the held-out evaluation set is ``tasks("heldout")``);
    ``get`` finds a task by id and raises ``KeyError`` if it is unknown.
    """

    name: str

    def sample(self, rng: np.random.Generator, *, split: Split = "train", difficulty: float | None = None) -> Task: ...

    def tasks(self, split: Split, *, limit: int | None = None) -> Iterator[Task]: ...

    def get(self, task_id: str) -> Task: ...
