"""The teacher: turns the student's failures into new code tasks (Code-as-Task proposals).

Each iteration the loop hands the teacher the failed trajectories. The teacher writes one context
per failure (``ProposeTask-v0``'s observation: the failed task, the student's answer and feedback,
example tasks of the family), asks its policy for all proposals in **one** batched ``generate``,
and keeps a proposal only if it passes every screen, in this order:

1. parses (``rejected_invalid``), and is valid in the sandbox: the reference passes its tests and
   every failing example fails one (``rejected_invalid``, the reason kept);
2. is not close to a held-out task (``rejected_decontam``) nor to a known task or an earlier
   proposal (``rejected_duplicate``);
3. is learnable: the solver's pass rate ``p`` over ``solver_attempts`` episodes gives
   ``4p(1-p)`` (or the band ``band_lo <= p <= band_hi``) above ``min_reward``
   (``rejected_learnability``); without a solver this screen is skipped.

A small model writes few valid proposals, so with ``mutation = "fallback"`` (the default) the
teacher also makes candidates by mutating the failed tasks themselves
(``selfgym.envs.generators.mutate``: an easier variant, a composition of two procedural tasks whose
types chain, a HumanEval-style re-rendering), judged by the same ``ProposalJudge``. They fill the
iteration's quota (``proposals_per_iteration``) when the LLM's accepted proposals fall short;
``"always"`` gives them a quota of their own beside the LLM's; ``"off"`` leaves the LLM alone.

Accepted tasks go into the store with split ``generated``, ``parent_id`` = the failed task,
``source = "teacher:<teacher_id>"`` and ``payload["generator"]`` = how they were made (``method``:
``"llm"`` or ``"mutation:<kind>"``; ``parents``: the task ids they came from, two for a
composition), by whom, when, and the measured pass rate; ``difficulty`` is ``1 - p`` (without a
solver: the parent's difficulty, or the mutation's estimate). ``propose`` returns the accepted tasks
and the ``teacher/*`` counts; it does not log them. ``proposed``, ``valid``, ``accepted``,
``aborted`` and the ``rejected_*`` counts cover every judged candidate, LLM and mutation alike;
``proposed_mutation`` counts the mutation candidates among them, ``accepted_llm`` and
``accepted_mutation`` split ``accepted`` by method.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from selfgym.decontam import DecontamConfig
from selfgym.envs.generators.context import (
    EXAMPLE_FAILURE,
    EXAMPLE_PROPOSAL,
    example_task,
    render_context,
    summarise_failure,
)
from selfgym.envs.generators.env import ProposeTaskConfig, code_sandbox
from selfgym.envs.generators.judge import Judgement, PassRates, ProposalJudge
from selfgym.envs.generators.mutate import MutatedProposal, Mutator
from selfgym.envs.generators.proposal import (
    Proposal,
    ProposalError,
    ProposalLimits,
    parse_proposal,
    proposal_task,
    render_proposal,
)
from selfgym.envs.generators.reward import RewardKind
from selfgym.errors import ConfigError
from selfgym.seeds import derive_seed
from selfgym.store import Store
from selfgym.types import Task, Trajectory

from .policy import Policy, SamplingParams

__all__ = ["METRICS", "ProposalRecord", "Teacher", "TeacherConfig", "TeacherResult"]

METRICS = ("teacher/proposed", "teacher/valid", "teacher/accepted", "teacher/rejected_invalid",
           "teacher/rejected_decontam", "teacher/rejected_duplicate", "teacher/rejected_learnability",
           "teacher/aborted", "teacher/proposed_mutation", "teacher/accepted_llm", "teacher/accepted_mutation")
MUTATION_ROUNDS = 3  # solver measurements per propose call when mutations fill a quota
MutationMode = Literal["off", "fallback", "always"]

SYSTEM_PROMPT = ("You are a teacher who writes small Python programming exercises with tests. "
                 "You always answer in the exact format you are asked for.")


@dataclass(frozen=True, kw_only=True)
class TeacherConfig:
    """The ``[teacher]`` section of a run: how many tasks to propose and how to judge them."""

    enabled: bool = field(default=False, metadata={"help": "propose new tasks from each iteration's failures"})
    proposals_per_iteration: int = field(default=4, metadata={
        "help": "proposals per iteration (one context per failure, cycling when there are fewer failures)"})
    examples_per_context: int = field(default=2, metadata={"help": "example tasks of the family shown per context"})
    solver_attempts: int = field(default=4, metadata={"help": "solver episodes per valid proposal (G)"})
    reward: RewardKind = field(default="learnability", metadata={
        "help": "learnability: 4p(1-p) of the solver pass rate p | band: 1 when band_lo <= p <= band_hi"})
    band_lo: float = field(default=0.1, metadata={"help": "lowest useful solver pass rate (band reward)"})
    band_hi: float = field(default=0.9, metadata={"help": "highest useful solver pass rate (band reward)"})
    min_reward: float = field(default=0.0, metadata={
        "help": "accept a proposal only when its learnability factor is above this (0: reject p=0 and p=1)"})
    decontam: DecontamConfig = field(default_factory=DecontamConfig, metadata={
        "help": "n-gram (and optional embedding) closeness to a held-out task that rejects a proposal"})
    duplicate: DecontamConfig = field(default_factory=DecontamConfig, metadata={
        "help": "closeness to a known task or an earlier proposal that rejects a proposal as a duplicate"})
    limits: ProposalLimits = field(default_factory=ProposalLimits, metadata={"help": "what a proposal must contain"})
    family: str = field(default="generated", metadata={"help": "family (and id prefix) of accepted tasks"})
    solver_env: str = field(default="selfgym/Code-v0", metadata={"help": "env the solver attempts proposals in"})
    max_tokens: int = field(default=512, metadata={"help": "most new tokens per proposal"})
    temperature: float = field(default=0.7, metadata={"help": "teacher sampling temperature (0: greedy)"})
    top_p: float = field(default=0.95, metadata={"help": "teacher nucleus sampling mass"})
    seed: int = field(default=0, metadata={"help": "seed of the teacher's sampling and example choice"})
    mutation: MutationMode = field(default="fallback", metadata={
        "help": "tasks mutated from the failed ones (easier, composed, HumanEval-style), judged the same way: "
                "fallback: fill the quota the LLM's accepted proposals leave | always: a quota of their own too | "
                "off: LLM proposals only"})

    def __post_init__(self) -> None:
        if self.mutation not in ("off", "fallback", "always"):
            raise ConfigError(f"teacher.mutation must be 'off', 'fallback' or 'always', got {self.mutation!r}")
        for name in ("proposals_per_iteration", "solver_attempts"):
            if getattr(self, name) < 1:
                raise ConfigError(f"teacher.{name} must be >= 1, got {getattr(self, name)}")
        if self.examples_per_context < 0:
            raise ConfigError(f"teacher.examples_per_context must be >= 0, got {self.examples_per_context}")
        # the env config checks reward, band_lo and band_hi with messages naming them
        self.env_config()

    def env_config(self) -> ProposeTaskConfig:
        """The same judging rules as a ``ProposeTask-v0`` config."""
        return ProposeTaskConfig(solver_attempts=self.solver_attempts, reward=self.reward, band_lo=self.band_lo,
                                 band_hi=self.band_hi, decontam=self.decontam, duplicate=self.duplicate,
                                 limits=self.limits)

    def sampling(self, iteration: int) -> SamplingParams:
        return SamplingParams(max_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p,
                              seed=derive_seed(self.seed, "teacher", iteration))


@dataclass(kw_only=True)
class ProposalRecord:
    """What happened to one proposal (for reports and debugging)."""

    parent_id: str
    text: str
    status: str  # accepted | invalid | decontam | duplicate | learnability | aborted
    method: str = "llm"  # llm | mutation:<kind>
    parents: tuple[str, ...] = ()  # the tasks it was made from (two for a composition)
    reason: str | None = None
    task: Task | None = None
    pass_rate: float | None = None


@dataclass(kw_only=True)
class TeacherResult:
    """The accepted tasks (already stored) and the ``teacher/*`` counts of one ``propose`` call."""

    accepted: list[Task]
    metrics: dict[str, float]
    records: list[ProposalRecord] = field(default_factory=list)


class Teacher:
    """Proposes new tasks from failures with its own policy (see the module docstring).

    Args:
        policy: the teacher's LLM (the student's policy, or a bigger one through the openai backend).
        config: ``TeacherConfig``.
        store: accepted tasks are added here (split ``generated``).
        run_id: the run the tasks belong to.
        teacher_id: who proposed them (kept in each task's source and payload).
        sandbox: where proposals are validated (as ``Code-v0`` takes it; default: the shared warm pool).
    """

    def __init__(self, policy: Policy, config: TeacherConfig | None = None, *, store: Store, run_id: str,
                 teacher_id: str, sandbox: Any = None) -> None:
        self.policy = policy
        self.config = config or TeacherConfig()
        self.store = store
        self.run_id = run_id
        self.teacher_id = teacher_id
        self.sandbox_spec = sandbox

    # ------------------------------------------------------------------ contexts
    def contexts(self, failures: Sequence[Trajectory], tasks_by_id: dict[str, Task], *,
                 iteration: int) -> list[tuple[Task, str]]:
        """``(parent task, context text)`` per proposal to make; held-out tasks never appear."""
        pairs = _failed_tasks(failures, tasks_by_id)
        if not pairs:
            return []
        rng = np.random.default_rng([self.config.seed, iteration])
        out = []
        for i in range(self.config.proposals_per_iteration):
            parent, traj = pairs[i % len(pairs)]
            pool = [t for t in tasks_by_id.values()
                    if t.family == parent.family and t.split != "heldout" and t.id != parent.id]
            k = min(self.config.examples_per_context, len(pool))
            examples = [pool[j] for j in rng.choice(len(pool), size=k, replace=False)] if k else []
            failure = summarise_failure(parent, traj)
            out.append((parent, render_context(parent.family, [failure], examples, worked_example=False)))
        return out

    def prompt(self, context: str) -> list[dict[str, str]]:
        """The chat the teacher's policy answers: a worked example as an earlier turn, then ``context``."""
        example = render_context(EXAMPLE_FAILURE.family, [summarise_failure(EXAMPLE_FAILURE)], [],
                                 worked_example=False)
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": example},
                {"role": "assistant", "content": render_proposal(EXAMPLE_PROPOSAL)},
                {"role": "user", "content": context}]

    # ------------------------------------------------------------------ proposing
    def propose(self, failures: list[Trajectory], tasks_by_id: dict[str, Task], *, iteration: int,
                pass_rates: PassRates | None, heldout: Iterable[Task]) -> TeacherResult:
        """Propose tasks for ``failures``; judge them (``ProposalJudge``: the ``ProposeTask-v0``
        rules, with ``pass_rates`` measuring learnability), store and return the accepted ones.
        Mutation candidates follow the LLM's proposals as ``config.mutation`` says."""
        metrics = dict.fromkeys(METRICS, 0.0)
        contexts = self.contexts(failures, tasks_by_id, iteration=iteration)
        if not contexts:
            return TeacherResult(accepted=[], metrics=metrics)
        completions = self.policy.generate([self.prompt(text) for _, text in contexts],
                                           self.config.sampling(iteration))
        known = [t for t in tasks_by_id.values() if t.split != "heldout"] + self.store.tasks(split="generated")
        known.append(example_task())  # a copy of the worked example is not a new task
        sandbox = code_sandbox(self.sandbox_spec)
        judge = ProposalJudge(self.config.env_config(), heldout=heldout, known=known, sandbox=sandbox,
                              pass_rates=pass_rates, min_reward=self.config.min_reward)
        records: list[ProposalRecord] = []
        candidates: list[tuple[ProposalRecord, Proposal, Task]] = []
        for (parent, _), completion in zip(contexts, completions, strict=True):
            record = ProposalRecord(parent_id=parent.id, parents=(parent.id,), text=completion.text, status="invalid")
            records.append(record)
            try:
                proposal = parse_proposal(record.text, self.config.limits)
            except ProposalError as exc:
                record.reason = f"does not parse: {exc}"
                continue
            task = proposal_task(proposal, family=self.config.family, parent_id=parent.id,
                                 source=f"teacher:{self.teacher_id}")
            candidates.append((record, proposal, task))
        judgements = judge.judge([(proposal, task) for _, proposal, task in candidates])
        accepted = [self._accept(record, judgement, tasks_by_id, iteration)
                    for (record, _, _), judgement in zip(candidates, judgements, strict=True)]
        quota = {"off": 0, "always": self.config.proposals_per_iteration,
                 "fallback": self.config.proposals_per_iteration - sum(t is not None for t in accepted)}
        if quota[self.config.mutation] > 0:
            mutator = Mutator(sandbox, known=known, family=self.config.family, source=f"teacher:{self.teacher_id}",
                              limits=self.config.limits, seed=self.config.seed)
            pairs = [(task, traj.turns[-1].action if traj.turns else None)
                     for task, traj in _failed_tasks(failures, tasks_by_id)]
            pool = mutator.candidates(pairs, iteration=iteration)
            for record, judgement in self._judge_mutations(judge, pool, quota[self.config.mutation]):
                records.append(record)
                accepted.append(self._accept(record, judgement, tasks_by_id, iteration))
        accepted_tasks = [task for task in accepted if task is not None]
        self.store.add_tasks(accepted_tasks, run_id=self.run_id)
        return TeacherResult(accepted=accepted_tasks, metrics=_counts(records, metrics), records=records)

    def _judge_mutations(self, judge: ProposalJudge, pool: Sequence[tuple[Proposal, Task]],
                         quota: int) -> list[tuple[ProposalRecord, Judgement]]:
        """Judge mutation candidates in order until ``quota`` are accepted: each round screens
        (sandbox, decontamination, duplicates) only as many as are still wanted, then measures their
        pass rates in one call; at most ``MUTATION_ROUNDS`` rounds of measurement."""
        out: list[tuple[ProposalRecord, Judgement]] = []
        queue = iter(pool)
        accepted = 0
        for _ in range(MUTATION_ROUNDS):
            wanted = quota - accepted
            batch: list[tuple[Proposal, Task]] = []
            while wanted > len(batch) and (item := next(queue, None)) is not None:
                verdict = judge.screen(*item, remember=False)
                if verdict is None:
                    batch.append(item)
                else:
                    out.append((_mutation_record(*item), verdict))
            if not batch:
                break
            for item, judgement in zip(batch, judge.judge(batch), strict=True):
                out.append((_mutation_record(*item), judgement))
                accepted += judgement.status == "accepted"
            if accepted >= quota:
                break
        return out

    def _accept(self, record: ProposalRecord, judgement: Judgement, tasks_by_id: dict[str, Task],
                iteration: int) -> Task | None:
        """Copy the judgement into ``record``; the task to store when it is accepted."""
        record.status, record.reason, record.pass_rate = judgement.status, judgement.reason, judgement.pass_rate
        if judgement.status != "accepted" or judgement.task is None:
            return None
        parent = tasks_by_id.get(record.parent_id)
        p = judgement.pass_rate
        if p is not None:
            difficulty = 1.0 - p
        elif parent is not None and record.method == "llm":
            difficulty = parent.difficulty
        else:  # a mutation's own estimate (easier: half the parent's; a composition: harder)
            difficulty = judgement.task.difficulty
        generator = {"method": record.method, "parents": list(record.parents),
                     "teacher_id": self.teacher_id, "run_id": self.run_id, "iteration": iteration,
                     "target_family": parent.family if parent is not None else "", "pass_rate": p,
                     "solver_attempts": self.config.solver_attempts, "learnability": judgement.factor}
        record.task = dataclasses.replace(judgement.task, difficulty=float(difficulty),
                                          payload={**judgement.task.payload, "generator": generator})
        return record.task


def _failed_tasks(failures: Sequence[Trajectory], tasks_by_id: dict[str, Task]) -> list[tuple[Task, Trajectory]]:
    """Each failed task that is not held-out, once, with its first failed trajectory, in order."""
    usable: dict[str, tuple[Task, Trajectory]] = {}
    for traj in failures:
        task = tasks_by_id.get(traj.task_id)
        if task is not None and task.split != "heldout" and not traj.success and task.id not in usable:
            usable[task.id] = (task, traj)
    return list(usable.values())


def _mutation_record(proposal: Proposal, task: Task) -> ProposalRecord:
    assert isinstance(proposal, MutatedProposal)
    return ProposalRecord(parent_id=task.parent_id or proposal.parents[0], text=render_proposal(proposal),
                          status="invalid", method=f"mutation:{proposal.kind}", parents=proposal.parents)


def _counts(records: Sequence[ProposalRecord], metrics: dict[str, float]) -> dict[str, float]:
    """The ``teacher/*`` counts of ``records`` (see the module docstring)."""
    metrics["teacher/proposed"] = float(len(records))
    metrics["teacher/valid"] = float(sum(r.status != "invalid" for r in records))
    for status in ("invalid", "decontam", "duplicate", "learnability"):
        metrics[f"teacher/rejected_{status}"] = float(sum(r.status == status for r in records))
    metrics["teacher/aborted"] = float(sum(r.status == "aborted" for r in records))
    metrics["teacher/accepted"] = float(sum(r.status == "accepted" for r in records))
    mutation = [r for r in records if r.method != "llm"]
    metrics["teacher/proposed_mutation"] = float(len(mutation))
    metrics["teacher/accepted_mutation"] = float(sum(r.status == "accepted" for r in mutation))
    metrics["teacher/accepted_llm"] = metrics["teacher/accepted"] - metrics["teacher/accepted_mutation"]
    return metrics
