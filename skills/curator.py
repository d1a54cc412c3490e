"""Keeping the library: usage stats, retirement, extraction of new skills, merging.

``SkillCurator.update`` runs once per iteration (read-write mode) on that iteration's episodes:

1. **usage**: an episode *used* a skill when its final code imports it from ``skills`` or defines
   a copy of it; uses and successes are added to the stats of the skill's current version;
2. **retirement**: a skill used at least ``retire_min_uses`` times whose success rate when used is
   below ``retire_below`` is retired (it stays in the store, out of prompts and the module);
3. **extraction**: for up to ``max_candidates`` successful episodes (one per task, held-out never),
   one batched ``generate`` of the extraction prompt; each answer is parsed, verified in the
   sandbox, and then added, or merged as a new version of a skill with the same name or nearly
   the same code (token Jaccard >= ``merge_similarity``) whose tests it also passes.
"""

from __future__ import annotations

import ast
import copy
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
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


def _shape(fn: ast.FunctionDef) -> str:
    """A function's AST without its docstring and annotations (what a verbatim copy keeps)."""
    fn = copy.deepcopy(fn)
    if ast.get_docstring(fn) is not None:
        fn.body = fn.body[1:] or [ast.Pass()]
    fn.returns = None
    for arg in ast.walk(fn.args):
        if isinstance(arg, ast.arg):
            arg.annotation = None
    return ast.dump(ast.Module(body=[fn], type_ignores=[]), annotate_fields=False)


def _shapes(code: str) -> dict[str, str]:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return {}
    return {n.name: _shape(n) for n in tree.body if isinstance(n, ast.FunctionDef)}


def skills_used(code: str | None, names: Iterable[str] | Mapping[str, str]) -> list[str]:
    """Library skills that ``code`` uses: takes from module ``skills`` (``from skills import x``,
    ``import skills`` + ``skills.x``) or, when ``names`` maps each name to the skill's code, defines
    as a copy (the same function, docstring and annotations aside)."""
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
    if isinstance(names, Mapping):
        mine = {n.name: _shape(n) for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in known}
        found |= {name for name, shape in mine.items() if shape == _shapes(names[name]).get(name)}
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
        names = {s.name: s.code for s in self.library.skills(include_retired=True)}
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
        library = {s.name: s.code for s in self.library.skills(include_retired=True)}
        names = list(library)
        chosen: dict[str, tuple[Trajectory, str]] = {}
        for traj in episodes:
            task = tasks_by_id.get(traj.task_id)
            code = final_code(traj) if traj.success else None
            if task is None or task.split == "heldout" or code is None or traj.task_id in chosen:
                continue
            if skills_used(code, library):
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
        """Add a verified candidate, or merge it into the skill it is a version of (``"added"`` or
        ``"merged"``). A candidate that takes the name of a skill whose tests it fails is added
        under a free name (``name_2``, ...): a new version never breaks what the old one did."""
        twin = self._twin(candidate)
        if twin is not None:
            candidate = _rename(candidate, twin.name)
        elif self.library.get(candidate.name) is not None:
            taken = {s.name for s in self.library.skills(include_retired=True)}
            free = next(name for i in range(2, len(taken) + 3) if (name := f"{candidate.name}_{i}") not in taken)
            candidate = _rename(candidate, free)
        skill = Skill(name=candidate.name, description=candidate.description, code=candidate.code,
                      signature=candidate.signature, tests=candidate.tests, source_trajectory_id=source_trajectory_id,
                      source_task_id=source_task_id, author_checkpoint_id=self.checkpoint_id)
        self.library.add(skill)
        return "merged" if twin is not None else "added"

    def _twin(self, candidate: Candidate) -> Skill | None:
        """The skill this candidate is a version of: one with the same name or similar code (token
        Jaccard >= ``merge_similarity``) whose tests the candidate also passes (short functions
        share many tokens without doing the same thing)."""
        similar: list[tuple[float, Skill]] = []
        for skill in self.library.skills(include_retired=True):
            score = 1.0 if skill.name == candidate.name else _jaccard(skill.code, candidate.code)
            if score >= self.config.merge_similarity:
                similar.append((score, skill))
        for _, skill in sorted(similar, key=lambda pair: -pair[0]):
            renamed = _rename(candidate, skill.name)
            if verify_candidate(self.sandbox, replace(renamed, tests=skill.tests)) is None:
                return skill
        return None
