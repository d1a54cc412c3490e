"""Tool task families: what a task needs besides its prompt.

A ``ToolFamily`` is a procedural task source (seeds, ``difficulty``, held-out seed range) that also
knows how to build an episode's state from a task, which tools act on that state, how to verify
the final state and answer, and an oracle plan. The task's ``payload`` holds everything needed to
rebuild the state, so a task read back from the store replays exactly.

The verifier checks outcomes (the state, the answer), never the call sequence. A bug in a
verifier raises; only the agent's mistakes become observations.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from selfgym.errors import ConfigError
from selfgym.types import Task

from ..tasks import MixedTaskSource, ProceduralTaskSource
from .schema import Tool

if TYPE_CHECKING:
    from .mcp_tools import MCPConnection

__all__ = ["AnswerFamily", "EpisodeContext", "MixedTasks", "ToolFamily", "Verdict", "answers_match", "mentions"]


@dataclass(frozen=True)
class Verdict:
    """The verifier's judgement of a finished episode; ``message`` is shown to the agent."""

    success: bool
    message: str


class EpisodeContext:
    """What a family gets to build an episode: a private temp dir and the mounted MCP servers.

    ``workdir`` is created on first use (families with in-memory state never pay for it) and
    removed by the env when the episode ends.
    """

    def __init__(self, servers: Mapping[str, MCPConnection] | None = None, *, prefix: str = "selfgym-tools-") -> None:
        self.servers: Mapping[str, MCPConnection] = dict(servers or {})
        self._prefix = prefix
        self._workdir: Path | None = None

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix=self._prefix))
        return self._workdir

    def cleanup(self) -> None:
        """Remove the temp dir, if one was made."""
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


class ToolFamily(ProceduralTaskSource):
    """A procedural family of tool tasks.

    Subclasses implement ``generate`` (prompt and payload from a seeded generator), ``tools``,
    ``verify`` and ``plan``, and usually ``open`` (build the episode's state). ``servers`` names
    the MCP servers (``MCPServerConfig.name``) the family needs mounted.
    """

    family = "tools"
    servers: tuple[str, ...] = ()

    def open(self, task: Task, ctx: EpisodeContext) -> Any:
        """Build the episode's state (the "world") from ``task.payload``."""
        return None

    @abstractmethod
    def tools(self, world: Any) -> Sequence[Tool]:
        """The tools the agent may call, bound to ``world``. List them explicitly."""

    @abstractmethod
    def verify(self, task: Task, world: Any, answer: str) -> Verdict:
        """Judge the final state and answer."""

    @abstractmethod
    def plan(self, task: Task, world: Any) -> list[str]:
        """The oracle: action texts that solve the task from the initial state, the answer last."""

    def close(self, world: Any) -> None:
        """Release what ``open`` acquired (the temp dir itself is removed by the env)."""


class AnswerFamily(ToolFamily):
    """Tasks from a file or the store whose payload names the expected ``answer``.

    The agent gets every tool of every mounted MCP server (plus the env's extra tools); the
    answer is compared with ``answers_match``. ``payload["answer"]`` may be a list of accepted
    answers; ``payload["oracle"]`` (a list of action texts) is the oracle plan, if given.
    """

    family = "answer"

    def generate(self, rng: np.random.Generator, difficulty: float) -> tuple[str, dict[str, Any]]:
        raise ConfigError("answer tasks come from a task source (a JSONL file, the store), not a generator")

    def open(self, task: Task, ctx: EpisodeContext) -> list[Tool]:
        if "answer" not in task.payload:
            raise ConfigError(f"task {task.id!r}: payload has no 'answer' and family {task.family!r} is unknown")
        return [t for server in ctx.servers.values() for t in server.tools()]

    def tools(self, world: list[Tool]) -> Sequence[Tool]:
        return world

    def verify(self, task: Task, world: Any, answer: str) -> Verdict:
        expected = task.payload["answer"]
        accepted = expected if isinstance(expected, list) else [expected]
        ok = any(answers_match(answer, str(a)) for a in accepted)
        return Verdict(ok, "correct" if ok else "incorrect answer")

    def plan(self, task: Task, world: Any) -> list[str]:
        if "oracle" not in task.payload:
            raise NotImplementedError(f"task {task.id!r} has no payload['oracle'] plan")
        return list(task.payload["oracle"])


_NUMBER = re.compile(r"^[-+]?(\d[\d,]*\.?\d*|\.\d+)(e[-+]?\d+)?$", re.IGNORECASE)


def _normalise(text: str) -> str:
    text = " ".join(text.strip().casefold().split())
    return text.strip(" .!;:\"'`")


def answers_match(given: str, expected: str, *, rel_tol: float = 1e-6, abs_tol: float = 1e-6) -> bool:
    """Same answer up to case, spacing, surrounding quotes/punctuation, and number formatting."""
    a, b = _normalise(given), _normalise(expected)
    if a == b:
        return True
    a_num, b_num = a.lstrip("$"), b.lstrip("$")
    if _NUMBER.match(a_num) and _NUMBER.match(b_num):
        x, y = float(a_num.replace(",", "")), float(b_num.replace(",", ""))
        return math.isclose(x, y, rel_tol=rel_tol, abs_tol=abs_tol)
    return False


_ANY_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:e[-+]?\d+)?(?![\w])", re.IGNORECASE)


def mentions(answer: str, expected: str) -> bool:
    """``answer`` gives ``expected`` unambiguously: a number as the only number in it, text as a
    whole word or phrase (case-insensitive). "The id is 13." mentions 13; "12 or 13" does not."""
    target = _normalise(expected)
    if _NUMBER.match(target.lstrip("$")):
        numbers = {float(n.replace(",", "").rstrip(".")) for n in _ANY_NUMBER.findall(answer.replace("$", ""))}
        return len(numbers) == 1 and math.isclose(numbers.pop(), float(target.lstrip("$").replace(",", "")),
                                                  rel_tol=1e-6, abs_tol=1e-6)
    pattern = r"(?<![\w@.-])" + re.escape(target) + r"(?![\w@-]|\.\w)"
    return re.search(pattern, " ".join(answer.casefold().split())) is not None


MixedTasks = MixedTaskSource  # the tool families as one source
