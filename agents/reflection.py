"""Reflections (Reflexion): short lessons written after a failed episode, retrieved for later attempts.

- ``Reflector`` asks a policy (the agent's own or another) for a one- or two-sentence lesson per
  failed trajectory, all of a batch in one ``generate`` call.
- ``ReflectionMemory`` keeps them. With a ``Store`` they are rows of its ``memory`` table
  (``kind="reflection"``, ``key`` = task id, content with the family, the lesson, the trajectory
  and the policy that wrote it); without one they live only in this process (held-out
  evaluation, where nothing may enter memory). As a ``Retriever`` it returns the task's own
  lessons first (newest first), then, with ``scope="family"``, lessons from similar tasks of the
  same family, ranked by word overlap of the task prompts.
- ``ReflectionWriter`` ties them to the rollout engine: it reflects on the failures among the
  episodes that just ended (``run_rollouts(..., on_step_end=writer)``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from selfgym.errors import ConfigError
from selfgym.store import Store
from selfgym.types import Task, Trajectory, new_id

from .memory import Note
from .policy import Policy, SamplingParams
from .prompt import clip_text

__all__ = ["ReflectionConfig", "ReflectionMemory", "ReflectionWriter", "Reflector", "reflection_prompt"]

KIND = "reflection"
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, kw_only=True)
class ReflectionConfig:
    """Whether and how reflections are written and retrieved."""

    enabled: bool = field(default=True, metadata={"help": "write and retrieve reflections at all (ablation)"})
    max_in_prompt: int = field(default=3, metadata={"help": "most reflections put into one prompt"})
    scope: Literal["task", "family"] = field(
        default="family", metadata={"help": "the task's own lessons only, or also similar tasks' of its family"})
    max_turns_shown: int = field(default=6, metadata={"help": "last turns of the episode shown to the reflector"})
    max_chars: int = field(default=400, metadata={"help": "a lesson is cut to this length"})
    sampling: SamplingParams = field(
        default_factory=lambda: SamplingParams(max_tokens=96, temperature=0.0),
        metadata={"help": "how the reflector samples"})

    def __post_init__(self) -> None:
        if self.scope not in ("task", "family"):
            raise ConfigError(f"ReflectionConfig.scope must be 'task' or 'family', got {self.scope!r}")
        if self.max_in_prompt < 0:
            raise ConfigError(f"ReflectionConfig.max_in_prompt must be >= 0, got {self.max_in_prompt}")


def reflection_prompt(task: Task, trajectory: Trajectory, max_turns: int = 6) -> list[dict[str, str]]:
    """The chat asking for a lesson from a failed episode (the task, its last turns, the outcome)."""
    turns = trajectory.turns
    feedback = [t.observation for t in turns[1:]] + [str(trajectory.info.get("final_observation", ""))]
    first = max(0, len(turns) - max_turns)
    lines = [f"Task:\n{task.prompt.strip()}", ""]
    if first:
        lines.append(f"(the first {first} turns are not shown)")
    for turn, answer in zip(turns[first:], feedback[first:], strict=True):
        lines.append(f"Your action: {clip_text(turn.action.strip(), 600)}")
        lines.append(f"Feedback: {clip_text(answer.strip(), 600)}")
    outcome = "the turn budget ran out" if trajectory.truncated else "the task was not solved"
    lines.append(f"\nOutcome: {outcome}.")
    lines.append("In one or two sentences, say what went wrong and what to do differently next time.")
    return [{"role": "system", "content": "You review failed attempts and write short, concrete lessons."},
            {"role": "user", "content": "\n".join(lines)}]


def _clean(text: str, max_chars: int) -> str:
    text = " ".join(text.split())
    return text[:max_chars].rstrip()


class Reflector:
    """Writes lessons from failed trajectories with a policy (one batched call per list)."""

    def __init__(self, policy: Policy, config: ReflectionConfig | None = None) -> None:
        self.policy = policy
        self.config = config or ReflectionConfig()

    def reflect(self, failures: Sequence[tuple[Task, Trajectory]]) -> list[str]:
        """One lesson per ``(task, trajectory)``; an empty reply gives an empty string."""
        if not failures:
            return []
        prompts = [reflection_prompt(t, traj, self.config.max_turns_shown) for t, traj in failures]
        return [_clean(c.text, self.config.max_chars) for c in self.policy.generate(prompts, self.config.sampling)]


class ReflectionMemory:
    """Reflections of a run, as a ``Retriever`` (see the module docstring).

    Args:
        store: where reflections persist (``None``: this process only).
        run_id: recorded with each stored reflection.
    """

    kind = KIND

    def __init__(self, store: Store | None = None, config: ReflectionConfig | None = None, *,
                 run_id: str | None = None) -> None:
        self.store = store
        self.config = config or ReflectionConfig()
        self.run_id = run_id
        self._local: list[dict[str, Any]] = []

    def add(self, task: Task, text: str, *, trajectory_id: str = "", policy_id: str = "") -> Note | None:
        """Keep a lesson for ``task``. Empty lessons are dropped; held-out ones never reach the store.

        Raises:
            ConfigError: a held-out task's lesson was to be written to the store.
        """
        text = _clean(text, self.config.max_chars)
        if not text or not self.config.enabled:
            return None
        if task.split == "heldout" and self.store is not None:
            raise ConfigError(f"task {task.id} is held out: its reflections may not enter the store; "
                              "use ReflectionMemory(store=None) for evaluation")
        item_id = new_id("refl-")
        item: dict[str, Any] = {"id": item_id, "task_id": task.id, "family": task.family, "text": text,
                "task_prompt": task.prompt[:2000], "trajectory_id": trajectory_id, "policy_id": policy_id,
                "created_at": time.time()}
        if self.store is not None:
            content = {k: v for k, v in item.items() if k not in ("id", "created_at")}
            self.store.add_memory(item_id, KIND, task.id, content, run_id=self.run_id)
        else:
            self._local.append(item)
        return Note(id=item_id, text=text)

    def items(self, task_id: str | None = None) -> list[dict[str, Any]]:
        """All reflections (of one task), oldest first."""
        if self.store is not None:
            rows = self.store.memory(KIND, key=task_id)
        else:
            rows = [r for r in self._local if task_id is None or r["task_id"] == task_id]
        return sorted(rows, key=lambda r: r["created_at"])

    def retrieve(self, task: Task, k: int) -> list[Note]:
        """The task's newest lessons, then (``scope="family"``) the closest tasks' of the same family."""
        if not self.config.enabled:
            return []
        k = min(k, self.config.max_in_prompt)
        if k <= 0:
            return []
        chosen = [Note(id=r["id"], text=r["text"]) for r in self.items(task.id)[::-1][:k]]
        if len(chosen) < k and self.config.scope == "family":
            words = set(_WORD.findall(task.prompt.lower()))
            others = [r for r in self.items() if r["family"] == task.family and r["task_id"] != task.id]

            def overlap(row: dict[str, Any]) -> tuple[float, float]:
                theirs = set(_WORD.findall(str(row.get("task_prompt", "")).lower()))
                return len(words & theirs) / max(1, len(words | theirs)), row["created_at"]

            others.sort(key=overlap, reverse=True)
            chosen += [Note(id=r["id"], text=r["text"]) for r in others[: k - len(chosen)]]
        return chosen


class ReflectionWriter:
    """After each rollout step, reflect on the episodes that failed and keep the lessons.

    Aborted episodes (infrastructure failures) and successes are skipped.
    """

    def __init__(self, reflector: Reflector, memory: ReflectionMemory) -> None:
        self.reflector = reflector
        self.memory = memory
        self.written: list[Note] = []

    def __call__(self, finished: Sequence[tuple[Task, Trajectory]]) -> None:
        if not self.memory.config.enabled:
            return
        failures = [(t, traj) for t, traj in finished if not traj.success and not traj.aborted and traj.turns]
        for (task, traj), text in zip(failures, self.reflector.reflect(failures), strict=True):
            note = self.memory.add(task, text, trajectory_id=traj.id, policy_id=traj.policy_id)
            if note is not None:
                self.written.append(note)
