"""Task sources: where environments get their tasks from.

``TaskSource`` is the protocol. Two implementations cover most needs:

* ``ListTaskSource`` holds a fixed set (HumanEval, a JSONL file, tasks from the store).
* ``ProceduralTaskSource`` makes a task from ``(seed, difficulty)``. Seeds at or above
  ``HELDOUT_SEED_BASE`` are the held-out split, so train and held-out never share a task.

``MixedTaskSource`` serves several families (sources) as one.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from selfgym.errors import ConfigError
from selfgym.types import SPLITS, Split, Task, TaskSource

__all__ = [
    "HELDOUT_SEED_BASE",
    "ListTaskSource",
    "MixedTaskSource",
    "ProceduralTaskSource",
    "TaskSource",
    "load_jsonl_tasks",
    "read_jsonl",
]

HELDOUT_SEED_BASE = 1_000_000_000
GENERATED_SEED_BASE = 2_000_000_000


class ListTaskSource:
    """A fixed set of tasks.

    ``sample(difficulty=d)`` draws among the tasks whose difficulty is closest to ``d``.
    """

    def __init__(self, tasks: Iterable[Task], *, name: str = "list") -> None:
        self.name = name
        self._tasks: dict[str, Task] = {}
        for task in tasks:
            if task.id in self._tasks:
                raise ValueError(f"task source {name!r}: duplicate task id {task.id!r}")
            self._tasks[task.id] = task
        self._by_split: dict[str, list[Task]] = {s: [] for s in SPLITS}
        for task in self._tasks.values():
            self._by_split[task.split].append(task)

    def __len__(self) -> int:
        return len(self._tasks)

    def sample(self, rng: np.random.Generator, *, split: Split = "train", difficulty: float | None = None) -> Task:
        pool = self._by_split.get(split) or []
        if not pool:
            raise ConfigError(f"task source {self.name!r} has no {split!r} tasks")
        if difficulty is not None:
            best = min(abs(t.difficulty - difficulty) for t in pool)
            pool = [t for t in pool if abs(t.difficulty - difficulty) <= best + 1e-9]
        return pool[int(rng.integers(len(pool)))]

    def tasks(self, split: Split, *, limit: int | None = None) -> Iterator[Task]:
        yield from self._by_split.get(split, [])[:limit]

    def get(self, task_id: str) -> Task:
        return self._tasks[task_id]


class MixedTaskSource:
    """Several families as one task source: ``sample`` picks a family uniformly, then a task from it;
    ``tasks`` interleaves the families' own lists (one of each in turn, finite ones dropping out), so
    a split's order is fixed. Task ids start with the family name (``family/...``)."""

    def __init__(self, families: Sequence[Any], *, name: str = "mixed") -> None:
        if not families:
            raise ConfigError(f"{type(self).__name__} needs at least one family")
        self.name = name
        self.families = list(families)
        self._by_name = {f.family: f for f in self.families}

    def family_of(self, task: Task) -> Any | None:
        """The family (source) of ``task``, or None if it is none of these."""
        return self._by_name.get(task.family)

    def sample(self, rng: np.random.Generator, *, split: Split = "train", difficulty: float | None = None) -> Task:
        family = self.families[int(rng.integers(len(self.families)))]
        return family.sample(rng, split=split, difficulty=difficulty)

    def tasks(self, split: Split, *, limit: int | None = None) -> Iterator[Task]:
        streams = [f.tasks(split) for f in self.families]
        count = 0
        while streams and (limit is None or count < limit):
            for stream in list(streams):
                if limit is not None and count >= limit:
                    return
                task = next(stream, None)
                if task is None:
                    streams.remove(stream)
                    continue
                count += 1
                yield task

    def get(self, task_id: str) -> Task:
        family = self._by_name.get(task_id.split("/", 1)[0])
        if family is None:
            raise KeyError(task_id)
        return family.get(task_id)


class ProceduralTaskSource(ABC):
    """A family of tasks generated from ``(seed, difficulty)``.

    Subclasses implement ``generate(rng, difficulty) -> (prompt, payload)``. Task ids look like
    ``family/s<seed>/d<difficulty>`` so ``get`` can rebuild any task from its id alone.
    """

    family: str = "procedural"
    difficulty_levels: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0)
    _ID = re.compile(r"^(?P<family>[^/]+)/s(?P<seed>\d+)/d(?P<difficulty>[0-9.]+)$")

    def __init__(self, *, name: str | None = None) -> None:
        self.name = name or self.family

    @abstractmethod
    def generate(self, rng: np.random.Generator, difficulty: float) -> tuple[str, dict[str, Any]]:
        """Return ``(prompt, payload)`` for one task; all randomness from ``rng``."""

    def make(self, seed: int, difficulty: float) -> Task:
        """The task for this seed and difficulty (deterministic)."""
        difficulty = round(float(np.clip(difficulty, 0.0, 1.0)), 3)
        prompt, payload = self.generate(np.random.default_rng([seed, int(difficulty * 1000)]), difficulty)
        return Task(
            id=f"{self.family}/s{seed}/d{difficulty}",
            family=self.family,
            prompt=prompt,
            split=_split_of(seed),
            payload=payload,
            difficulty=difficulty,
            source=f"procedural:{self.family}",
        )

    def sample(self, rng: np.random.Generator, *, split: Split = "train", difficulty: float | None = None) -> Task:
        base = _seed_base(split)
        seed = base + int(rng.integers(0, HELDOUT_SEED_BASE))
        if difficulty is None:
            difficulty = float(rng.choice(np.asarray(self.difficulty_levels)))
        return self.make(seed, difficulty)

    def tasks(self, split: Split, *, limit: int | None = None) -> Iterator[Task]:
        """Seeds ``base, base+1, ...`` cycling through ``difficulty_levels`` (endless without a limit)."""
        base, index = _seed_base(split), 0
        while limit is None or index < limit:
            yield self.make(base + index, self.difficulty_levels[index % len(self.difficulty_levels)])
            index += 1

    def get(self, task_id: str) -> Task:
        match = self._ID.match(task_id)
        if not match or match["family"] != self.family:
            raise KeyError(task_id)
        return self.make(int(match["seed"]), float(match["difficulty"]))


def _seed_base(split: Split) -> int:
    bases = {"train": 0, "heldout": HELDOUT_SEED_BASE, "generated": GENERATED_SEED_BASE}
    if split not in bases:
        raise ConfigError(f"split must be one of {tuple(bases)}, got {split!r}")
    return bases[split]


def _split_of(seed: int) -> Split:
    if seed >= GENERATED_SEED_BASE:
        return "generated"
    return "heldout" if seed >= HELDOUT_SEED_BASE else "train"


_TASK_KEYS = {"id", "family", "prompt", "split", "payload", "difficulty", "source", "parent_id"}


def read_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line number, record)`` for each non-blank line of a JSONL file.

    Raises:
        ValueError: a line is not valid JSON (the message names the file and line).
    """
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc


def load_jsonl_tasks(
    path: str | Path, *, name: str | None = None, family: str | None = None, split: Split | None = None
) -> ListTaskSource:
    """Load tasks from a JSONL file, one JSON object a line.

    Each object needs ``prompt``; ``id`` defaults to ``<file stem>/<line number>``. Keys that are
    not ``Task`` fields (``tests``, ``entry_point``, ...) go into ``payload``. ``family`` and
    ``split`` override what the file says.
    """
    path = Path(path)
    tasks = []
    for lineno, record in read_jsonl(path):
        if not isinstance(record, dict) or "prompt" not in record:
            raise ValueError(f"{path}:{lineno}: each line must be a JSON object with a 'prompt'")
        fields = {k: v for k, v in record.items() if k in _TASK_KEYS}
        extra = {k: v for k, v in record.items() if k not in _TASK_KEYS}
        fields["payload"] = {**fields.get("payload", {}), **extra}
        fields.setdefault("id", f"{path.stem}/{lineno}")
        fields["family"] = family or fields.get("family") or path.stem
        if split is not None:
            fields["split"] = split
        fields.setdefault("source", f"jsonl:{path.name}")
        tasks.append(Task(**fields))
    return ListTaskSource(tasks, name=name or path.stem)
