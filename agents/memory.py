"""The memory interfaces an agent reads from: skills, reflections, anything retrievable per task.

A ``Retriever`` returns, for a task, up to ``k`` items that each have an ``id`` and a ``text``;
its ``kind`` (``"skill"``, ``"reflection"``, ...) names the prompt section the items go into and
the key under which their ids are recorded in ``Trajectory.memory``. The skill library and the
reflection memory implement it; ``StaticMemory`` serves a fixed list (demos, ablations, tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from selfgym.types import Task

__all__ = ["MemoryItem", "Note", "Retriever", "StaticMemory"]


@runtime_checkable
class MemoryItem(Protocol):
    """Anything with an ``id`` and a ``text`` (a skill, a reflection)."""

    @property
    def id(self) -> str: ...

    @property
    def text(self) -> str: ...


@runtime_checkable
class Retriever(Protocol):
    """Items relevant to a task, best first. ``kind`` names them (``skill``, ``reflection``)."""

    kind: str

    def retrieve(self, task: Task, k: int) -> Sequence[MemoryItem]: ...


@dataclass(frozen=True, kw_only=True)
class Note:
    """A plain memory item."""

    id: str
    text: str


class StaticMemory:
    """The same items for every task (the first ``k``)."""

    def __init__(self, kind: str, items: Iterable[MemoryItem]) -> None:
        self.kind = kind
        self.items = list(items)

    def retrieve(self, task: Task, k: int) -> list[MemoryItem]:
        return self.items[:k]
