"""The skill library: verified, versioned, retrievable functions the agent wrote (Voyager / SAGE).

A ``Skill`` is one Python function with a description, its signature, the tests that verified it
and where it came from. The library keeps skills in the run store's append-only ``memory`` table
(``kind="skill"``, ``key`` = the skill's name): every change (a new version after a merge, a
retirement) is a new row, and the newest row of a name is the skill. Usage counts live in the
run's state (``skills/usage``, per version: a new version starts with a clean record), updated once
per iteration. A library object reads the store once and then sees the writes made through it
(``refresh`` re-reads, e.g. for another process's writes).

As a ``Retriever`` (``kind = "skill"``) the library returns the top-k active skills for a task by
BM25 over name, description and signature (``bm25s``), or by cosine similarity of sentence
embeddings (``retriever = "dense"``, the packaged all-MiniLM-L6-v2). In the code env every active
skill is importable as module ``skills`` (``module_source``), and the prompt shows the top-k.

A snapshot freezes the active skills (with their stats) under an id, tied to a checkpoint; a
library opened with ``snapshot=`` serves exactly those, read-only, so an evaluation can pin the
memory that went with a set of weights.
"""

from __future__ import annotations

import ast
import re
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from selfgym.errors import ConfigError
from selfgym.store import Store
from selfgym.types import SamplingParams, Task, new_id

__all__ = ["KIND", "SNAPSHOT_KIND", "Skill", "SkillLibrary", "SkillsConfig"]

KIND = "skill"
SNAPSHOT_KIND = "skill_snapshot"
USAGE_STATE = "skills/usage"
_WORD = re.compile(r"[A-Za-z]+|\d+")


@dataclass(frozen=True, kw_only=True)
class SkillsConfig:
    """The ``[skills]`` section of a run: whether the agent reads and writes a skill library."""

    mode: Literal["off", "read-only", "read-write"] = field(
        default="off", metadata={"help": "off | read-only (retrieve, never add) | read-write (extract after each "
                                          "iteration)"})
    k: int = field(default=3, metadata={"help": "skills shown in the prompt per task"})
    retriever: Literal["bm25", "dense"] = field(default="bm25", metadata={"help": "bm25 | dense (MiniLM embeddings)"})
    min_similarity: float = field(
        default=0.2, metadata={"help": "dense retrieval: cosine similarity below which a skill is not shown"})
    reward_bonus: float = field(
        default=0.0, metadata={"help": "added to the reward of a successful episode whose code used a library skill"})
    max_candidates: int = field(default=8, metadata={"help": "successful episodes sent to extraction per iteration"})
    merge_similarity: float = field(
        default=0.6, metadata={"help": "token overlap (Jaccard) of code above which a candidate is a new version "
                                       "of an existing skill"})
    retire_min_uses: int = field(default=4, metadata={"help": "uses before a skill can be retired"})
    retire_below: float = field(default=0.25, metadata={"help": "retire a skill whose success rate when used is below"})
    presentation: Literal["code", "signature"] = field(default="code", metadata={
        "help": "how a prompt shows a retrieved skill: code (its whole source) | signature (signature, one-line "
                "doc and a worked example of importing and calling it; shorter, and nothing to copy)"})
    sampling: SamplingParams = field(
        default_factory=lambda: SamplingParams(max_tokens=256, temperature=0.0),
        metadata={"help": "how the extraction prompt is sampled"})

    def __post_init__(self) -> None:
        if self.presentation not in ("code", "signature"):
            raise ConfigError(f"skills.presentation must be code or signature, got {self.presentation!r}")
        if self.mode not in ("off", "read-only", "read-write"):
            raise ConfigError(f"skills.mode must be off, read-only or read-write, got {self.mode!r}")
        if self.k < 1 or self.max_candidates < 0 or self.retire_min_uses < 1:
            raise ConfigError("skills.k and skills.retire_min_uses must be >= 1, skills.max_candidates >= 0")
        if not 0.0 < self.merge_similarity <= 1.0:
            raise ConfigError(f"skills.merge_similarity must be in (0, 1], got {self.merge_similarity}")


@dataclass(frozen=True, kw_only=True)
class Skill:
    """One verified function. ``id`` names this version; ``text`` is how a prompt shows it (per
    ``presentation``, set by the library that retrieved it; not stored)."""

    name: str
    description: str
    code: str
    signature: str
    tests: str
    source_trajectory_id: str = ""
    source_task_id: str = ""
    author_checkpoint_id: str | None = None
    version: int = 1
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    uses: int = 0
    successes: int = 0
    status: Literal["active", "retired"] = "active"
    presentation: Literal["code", "signature"] = field(default="code", compare=False)

    @property
    def id(self) -> str:
        return f"skill:{self.name}@v{self.version}"

    @property
    def text(self) -> str:
        stats = f"used {self.uses}x, {self.successes} successes" if self.uses else "new"
        if self.presentation == "signature":
            args = ", ".join(_positional_names(self.signature))
            return (f"{self.signature}: {self.description} (v{self.version}, {stats})\n"
                    f"Use it without rewriting it, e.g.:\n```python\nfrom skills import {self.name}\n\n"
                    f"def solve({args}):\n    return {self.name}({args})\n```")
        return (f"# {self.description} (v{self.version}, {stats})\n# use it with: from skills import {self.name}\n"
                f"{self.code.strip()}")

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.uses if self.uses else None

    def to_content(self) -> dict[str, Any]:
        content = asdict(self)
        del content["presentation"]  # how one prompt shows it, not part of the skill
        return content

    @classmethod
    def from_content(cls, content: dict[str, Any]) -> Skill:
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in content.items() if k in names})


def _positional_names(signature: str) -> list[str]:
    """The names of the parameters a call passes by position, from ``name(params)`` (``[]`` if it does
    not parse)."""
    try:
        fn = ast.parse(f"def {signature}: pass").body[0]
    except SyntaxError:
        return []
    assert isinstance(fn, ast.FunctionDef)
    required = fn.args.posonlyargs + fn.args.args
    return [a.arg for a in required[:len(required) - len(fn.args.defaults)]]


def tokens(text: str) -> list[str]:
    """Lower-case words of ``text``, identifiers split at underscores and camel case."""
    return [w.lower() for w in _WORD.findall(re.sub(r"([a-z])([A-Z])", r"\1 \2", text.replace("_", " ")))]


def _terms(text: str) -> list[str]:
    """Retrieval terms: ``tokens`` without English stop words and one-letter names."""
    from bm25s.stopwords import STOPWORDS_EN

    return [w for w in tokens(text) if len(w) > 1 and w not in STOPWORDS_EN]


class SkillLibrary:
    """A run's skills as a ``Retriever`` (see the module docstring).

    Args:
        store: the run store that holds the skills.
        config: the ``[skills]`` settings.
        run_id: the run the skills belong to.
        snapshot: serve exactly this snapshot, read-only.
    """

    kind = KIND

    def __init__(self, store: Store, config: SkillsConfig | None = None, *, run_id: str,
                 snapshot: str | None = None) -> None:
        self.store, self.config, self.run_id = store, config or SkillsConfig(), run_id
        self.snapshot_id = snapshot
        self._pinned: list[Skill] | None = None
        if snapshot is not None:
            rows = store.memory(SNAPSHOT_KIND, key=snapshot)
            if not rows:
                raise ConfigError(f"no skill snapshot {snapshot!r} in {store.path}")
            self._pinned = [Skill.from_content(c) for c in rows[-1]["skills"]]
        self._index_key: tuple[str, ...] | None = None
        self._index: Any = None
        self._encoder: Any = None
        self._latest: list[Skill] | None = None  # newest row per name, with usage; None = read the store

    @property
    def read_only(self) -> bool:
        return self._pinned is not None or self.config.mode != "read-write"

    # ------------------------------------------------------------------ reading
    def skills(self, *, include_retired: bool = False) -> list[Skill]:
        """The current version of every skill (newest row per name), with its usage stats."""
        if self._pinned is not None:
            return list(self._pinned)
        if self._latest is None:
            latest: dict[str, Skill] = {}
            for row in self.store.memory(KIND):
                if row.get("run_id") in (None, self.run_id):
                    latest[row["key"]] = Skill.from_content(row)
            usage = self.store.get_state(self.run_id, USAGE_STATE, {})
            self._latest = [replace(s, uses=usage.get(s.id, [0, 0])[0], successes=usage.get(s.id, [0, 0])[1])
                            for s in latest.values()]
        return [s for s in self._latest if include_retired or s.status == "active"]

    def refresh(self) -> None:
        """Forget what was read from the store (to see writes made elsewhere)."""
        self._latest = None

    def get(self, name: str) -> Skill | None:
        return next((s for s in self.skills(include_retired=True) if s.name == name), None)

    def versions(self, name: str) -> list[Skill]:
        """Every stored row of a skill, oldest first (new versions and retirements), each with the
        usage of its version."""
        usage = self.store.get_state(self.run_id, USAGE_STATE, {})
        rows = [Skill.from_content(r) for r in self.store.memory(KIND, key=name)
                if r.get("run_id") in (None, self.run_id)]
        return [replace(s, uses=usage.get(s.id, [0, 0])[0], successes=usage.get(s.id, [0, 0])[1]) for s in rows]

    def module_source(self) -> str:
        """The ``skills`` module: every active skill's code (imports first), importable in the sandbox."""
        parts = [f"# {s.id}: {s.description}\n{s.code.strip()}\n" for s in self.skills()]
        return "\n\n".join(parts) if parts else "# the skill library is empty\n"

    def retrieve(self, task: Task, k: int) -> list[Skill]:
        """Up to ``k`` active skills for ``task``, best first (none that score zero under BM25)."""
        skills = self.skills()
        k = min(k, self.config.k)
        if not skills or k < 1:
            return []
        found = self._dense(task, skills, k) if self.config.retriever == "dense" else self._bm25(task, skills, k)
        return [replace(s, presentation=self.config.presentation) for s in found]

    def _bm25(self, task: Task, skills: list[Skill], k: int) -> list[Skill]:
        import bm25s

        key = tuple(s.id for s in skills)
        if key != self._index_key:
            self._index = bm25s.BM25()
            self._index.index([_terms(f"{s.name} {s.description} {s.signature}") for s in skills],
                              show_progress=False)
            self._index_key = key
        query = [w for w in _terms(task.prompt) if w in self._index.vocab_dict]
        if not query:
            return []
        scores = self._index.get_scores(query)
        order = np.argsort(-scores, kind="stable")[:k]
        return [skills[i] for i in order if scores[i] > 0]

    def _dense(self, task: Task, skills: list[Skill], k: int) -> list[Skill]:
        if self._encoder is None:
            from selfgym.decontam import SentenceEncoder  # the packaged all-MiniLM-L6-v2

            self._encoder = SentenceEncoder()
        key = tuple(s.id for s in skills)
        if key != self._index_key:  # skill vectors kept while the library is unchanged
            self._index = self._encoder.encode([f"{s.name}: {s.description}" for s in skills])
            self._index_key = key
        scores = self._index @ self._encoder.encode([task.prompt])[0]
        order = np.argsort(-scores, kind="stable")[:k]
        return [skills[i] for i in order if scores[i] >= self.config.min_similarity]

    # ------------------------------------------------------------------ writing
    def _check_writable(self) -> None:
        if self.read_only:
            raise ConfigError("this skill library is read-only (mode read-only, or a pinned snapshot)")

    def add(self, skill: Skill) -> Skill:
        """Store ``skill``: as version 1, or as the next version when its name exists. Returns it."""
        self._check_writable()
        current = self.get(skill.name)
        if current is not None:
            skill = replace(skill, version=current.version + 1, created=current.created, updated=time.time(),
                            status="active")
        skill = replace(skill, uses=0, successes=0)
        self.store.add_memory(new_id("skill-"), KIND, skill.name, skill.to_content(), version=skill.version,
                              run_id=self.run_id)
        self._latest = None
        return skill

    def retire(self, name: str) -> None:
        """Mark a skill retired (a new row; its versions stay in the store)."""
        self._check_writable()
        current = self.get(name)
        if current is not None and current.status == "active":
            self.store.add_memory(new_id("skill-"), KIND, name,
                                  replace(current, status="retired", updated=time.time()).to_content(),
                                  version=current.version, run_id=self.run_id)
            self._latest = None

    def record_usage(self, counts: dict[str, tuple[int, int]]) -> None:
        """Add ``{name: (uses, successes)}`` to the stats of each skill's current version."""
        self._check_writable()
        usage = self.store.get_state(self.run_id, USAGE_STATE, {})
        for name, (uses, successes) in counts.items():
            skill = self.get(name)
            if skill is None:
                raise KeyError(f"no skill {name!r} in the library")
            old = usage.get(skill.id, [0, 0])
            usage[skill.id] = [old[0] + uses, old[1] + successes]
        self.store.set_state(self.run_id, USAGE_STATE, usage)
        self._latest = None

    def snapshot(self, checkpoint_id: str | None = None) -> str:
        """Freeze the active skills (with stats) under a new id tied to ``checkpoint_id``; return the id."""
        snap_id = new_id("skills-")
        content = {"checkpoint_id": checkpoint_id, "skills": [s.to_content() for s in self.skills()]}
        self.store.add_memory(snap_id, SNAPSHOT_KIND, snap_id, content, run_id=self.run_id)
        return snap_id

    def snapshots(self) -> list[dict[str, Any]]:
        """Stored snapshots, oldest first: ``id``, ``checkpoint_id``, ``n_skills``, ``created_at``."""
        return [{"id": r["key"], "checkpoint_id": r["checkpoint_id"], "n_skills": len(r["skills"]),
                 "created_at": r["created_at"]} for r in self.store.memory(SNAPSHOT_KIND)
                if r.get("run_id") in (None, self.run_id)]
