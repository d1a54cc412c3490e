"""Keeping the library: usage stats, retirement, extraction of new skills, merging.

``SkillCurator.update`` runs once per iteration (read-write mode) on that iteration's episodes:

1. **usage**: an episode *used* a skill when its final code imports it from ``skills``; uses and
   successes are added to the library's stats;
2. **retirement**: a skill used at least ``retire_min_uses`` times whose success rate when used is
   below ``retire_below`` is retired (it stays in the store, out of prompts and the module);
3. **extraction**: for up to ``max_candidates`` successful episodes (one per task, held-out never),
   one batched ``generate`` of the extraction prompt; each answer is parsed, verified in the
   sandbox, and then added, or merged as a new version of a skill with the same name or nearly
   the same code (token Jaccard >= ``merge_similarity``).
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from selfgym.types import Task, Trajectory

from .extract import Candidate, CandidateError, extraction_prompt, parse_candidate
from .library import Skill, SkillLibrary, SkillsConfig, tokens
from .verify import code_sandbox, verify_candidate

__all__ = ["EXTRACTION_COUNTS", "SkillCurator", "final_code", "skills_used"]

EXTRACTION_COUNTS = ("proposed", "added", "merged", "rejected", "rejected_unparseable", "rejected_own_tests",
                     "rejected_task_tests")


def final_code(traj: Trajectory) -> str | None:
    """The code of an episode's last submitted action (None when there is none)."""
    from selfgym.envs.code.extract import extract_code
    from selfgym.errors import ActionError

    for turn in reversed(traj.turns):
        try:
            return extract_code(turn.action)
        except (ActionError, ValueError):
            continue
    return None


def skills_used(code: str | None, names: Iterable[str]) -> list[str]:
    """Library skills that ``code`` takes from module ``skills`` (``from skills import x``,
    ``import skills`` + ``skills.x``)."""
    if not code:
        return []
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    known, found = set(names), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "skills":
            found |= {a.name for a in node.names} if not any(a.name == "*" for a in node.names) else known
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "skills":
            found.add(node.attr)
    return sorted(found & known)


def _jaccard(a: str, b: str) -> float:
    x, y = set(tokens(a)), set(tokens(b))
    return len(x & y) / len(x | y) if x | y else 0.0


def _rename(candidate: Candidate, name: str) -> Candidate:
    """The candidate with its function (and its tests' calls) renamed to ``name``."""
    pattern = re.compile(rf"\b{re.escape(candidate.name)}\b")
    return replace(candidate, name=name, code=pattern.sub(name, candidate.code),
                   tests=pattern.sub(name, candidate.tests), signature=pattern.sub(name, candidate.signature, 1))


class SkillCurator:
    """Writes and maintains a ``SkillLibrary`` from a run's episodes (see the module docstring).

    Args:
        library: the (read-write) library.
        policy: the model that answers the extraction prompt (any ``Policy``).
        config: the ``[skills]`` settings (default: the library's).
        sandbox: where candidates are verified (default: the code env's shared sandbox).
    """

    def __init__(self, library: SkillLibrary, policy: Any, config: SkillsConfig | None = None, *,
                 sandbox: Any = None, checkpoint_id: str | None = None) -> None:
        self.library, self.policy = library, policy
        self.config = config or library.config
        self._sandbox = sandbox
        self.checkpoint_id = checkpoint_id
        self.rejections: list[tuple[str, str]] = []  # (task id, reason) of the last update

    @property
    def sandbox(self) -> Any:
        if self._sandbox is None:
            self._sandbox = code_sandbox()
        return self._sandbox

    def update(self, trajectories: Sequence[Trajectory], tasks_by_id: dict[str, Task]) -> dict[str, float]:
        """Usage, retirement and extraction over one iteration's episodes; returns ``skills/*`` metrics."""
        episodes = [t for t in trajectories if not t.aborted]
        metrics = self._usage(episodes)
        metrics["skills/retired"] = float(self._retire())
        metrics.update(self.extract(episodes, tasks_by_id))
        metrics["skills/size"] = float(len(self.library.skills()))
        return metrics

    def _usage(self, episodes: Sequence[Trajectory]) -> dict[str, float]:
        names = [s.name for s in self.library.skills(include_retired=True)]
        counts: Counter[str] = Counter()
        wins: Counter[str] = Counter()
        for traj in episodes:
            for name in skills_used(final_code(traj), names):
                counts[name] += 1
                wins[name] += int(traj.success)
        if counts:
            self.library.record_usage({n: (counts[n], wins[n]) for n in counts})
        shown = sum(bool(t.memory.get("skill")) for t in episodes)
        return {"skills/uses": float(sum(counts.values())), "skills/used_successes": float(sum(wins.values())),
                "skills/episodes_shown": float(shown)}

    def _retire(self) -> int:
        retired = 0
        for skill in self.library.skills():
            rate = skill.success_rate
            if skill.uses >= self.config.retire_min_uses and rate is not None and rate < self.config.retire_below:
                self.library.retire(skill.name)
                retired += 1
        return retired

    def extract(self, episodes: Sequence[Trajectory], tasks_by_id: dict[str, Task]) -> dict[str, float]:
        """Propose, verify and add skills from successful episodes (one per task)."""
        self.rejections = []
        names = [s.name for s in self.library.skills(include_retired=True)]
        chosen: dict[str, tuple[Trajectory, str]] = {}
        for traj in episodes:
            task = tasks_by_id.get(traj.task_id)
            code = final_code(traj) if traj.success else None
            if task is None or task.split == "heldout" or code is None or traj.task_id in chosen:
                continue
            if skills_used(code, names):
                continue  # solved with the library already: nothing new to learn from it
            chosen[traj.task_id] = (traj, code)
            if len(chosen) >= self.config.max_candidates:
                break
        counts = Counter(proposed=len(chosen))
        if not chosen:
            return {f"skills/{k}": 0.0 for k in EXTRACTION_COUNTS}
        prompts = [extraction_prompt(tasks_by_id[tid], code, existing=names) for tid, (_, code) in chosen.items()]
        completions = self.policy.generate(prompts, self.config.sampling)
        for (task_id, (traj, code)), completion in zip(chosen.items(), completions, strict=True):
            outcome = self._consider(completion.text, tasks_by_id[task_id], traj, code)
            counts[outcome] += 1
        for _, reason in self.rejections:
            counts["rejected_" + ("unparseable" if reason.startswith("unparseable") else
                                  "own_tests" if reason.startswith("its own tests") else "task_tests")] += 1
        return {f"skills/{k}": float(counts[k]) for k in EXTRACTION_COUNTS}

    def _consider(self, answer: str, task: Task, traj: Trajectory, solution: str) -> str:
        try:
            first_line = next((line.strip() for line in task.prompt.splitlines() if line.strip()), "")
            candidate = parse_candidate(answer, fallback_description=first_line[:200])
        except CandidateError as exc:
            self.rejections.append((task.id, f"unparseable: {exc}"))
            return "rejected"
        reason = verify_candidate(self.sandbox, candidate, task=task, solution=solution)
        if reason is not None:
            self.rejections.append((task.id, reason))
            return "rejected"
        return self.add_verified(candidate, source_trajectory_id=traj.id, source_task_id=task.id)

    def add_verified(self, candidate: Candidate, *, source_trajectory_id: str = "", source_task_id: str = "") -> str:
        """Add a verified candidate, or merge it into its near-duplicate; ``"added"`` or ``"merged"``."""
        twin = self._twin(candidate)
        if twin is not None and twin.name != candidate.name:
            candidate = _rename(candidate, twin.name)
        skill = Skill(name=candidate.name, description=candidate.description, code=candidate.code,
                      signature=candidate.signature, tests=candidate.tests, source_trajectory_id=source_trajectory_id,
                      source_task_id=source_task_id, author_checkpoint_id=self.checkpoint_id)
        self.library.add(skill)
        return "merged" if twin is not None else "added"

    def _twin(self, candidate: Candidate) -> Skill | None:
        """The skill this candidate is a version of: the same name, or similar code that also passes
        that skill's tests (short functions share many tokens without doing the same thing)."""
        similar: list[tuple[float, Skill]] = []
        for skill in self.library.skills(include_retired=True):
            if skill.name == candidate.name:
                return skill
            score = _jaccard(skill.code, candidate.code)
            if score >= self.config.merge_similarity:
                similar.append((score, skill))
        for _, skill in sorted(similar, key=lambda pair: -pair[0]):
            renamed = _rename(candidate, skill.name)
            if verify_candidate(self.sandbox, replace(renamed, tests=skill.tests)) is None:
                return skill
        return None
