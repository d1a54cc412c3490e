"""A short teacher run on CPU: how many tasks does a model propose that are valid, novel and learnable?

1. The student (the LLM agent on the embedded SmolLM2-135M) attempts a few train tasks of the code
   families in ``Code-v0`` (one attempt each); its failures are real trajectories.
2. The teacher (the same model by default, ``--teacher`` picks another policy spec, e.g.
   ``openai:http://localhost:8000/v1``) proposes ``--proposals`` tasks from those failures, in one
   batched generation; each is parsed, validated in the sandbox, decontaminated against the held-out
   split (code families and HumanEval), checked for duplicates, and attempted ``--solver-attempts``
   times by the student to measure learnability.
3. Baseline, measured in the same run on the same failures: a scripted teacher that writes the
   oracle proposal of each failed task (``oracle_proposal``), judged by the same screens.

Prints the ``teacher/*`` counts of both, the embedded teacher's valid and accepted rates relative to
the baseline, why each proposal was rejected (LLM and mutation candidates apart), and each accepted
task's closest HumanEval problem. The counts are also logged to a run store. ``--iterations N``
repeats step 1 and 2 on new failures (the teacher's ``mutation`` fallback on by default).

    OMP_NUM_THREADS=1 python bench/teacher_run.py               # about two minutes on 2 cores
    OMP_NUM_THREADS=1 python bench/teacher_run.py --proposals 24 --temperature 0.7
    OMP_NUM_THREADS=1 python bench/teacher_run.py --iterations 2 --mutation off
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections import Counter
from pathlib import Path

from selfgym.agents.llm import AgentConfig, LLMAgent
from selfgym.agents.policy import SamplingParams, make_policy
from selfgym.agents.teacher import Teacher, TeacherConfig, TeacherResult
from selfgym.agents.testing import FunctionPolicy
from selfgym.decontam import Decontaminator, overlap
from selfgym.envs.code.datasets import humaneval_tasks
from selfgym.envs.code.families import FAMILIES
from selfgym.envs.generators.context import oracle_proposal
from selfgym.envs.generators.proposal import render_proposal
from selfgym.run.passrates import rollout_pass_rates
from selfgym.run.rollout import RolloutConfig, run_rollouts
from selfgym.store import Store
from selfgym.types import Task


def student_failures(agent: LLMAgent, n_tasks: int, seed: int) -> tuple[list, dict[str, Task]]:
    """The student's failed trajectories on ``n_tasks`` easy train tasks (one attempt each)."""
    families = list(FAMILIES.values())
    tasks = [families[i % len(families)].make(seed * 1000 + i, 0.0 if i % 2 == 0 else 0.25) for i in range(n_tasks)]
    result = run_rollouts("selfgym/Code-v0", agent, tasks, RolloutConfig(seed=seed, progress=False),
                          env_kwargs={"max_attempts": 1})
    by_id = {t.id: t for t in tasks}
    for family in FAMILIES.values():  # more tasks of each family: examples and duplicate screening
        by_id.update({t.id: t for t in family.tasks("train", limit=5)})
    failures = [t for t in result.trajectories if not t.success and not t.aborted]
    print(f"student: {len(tasks) - len(failures)}/{len(tasks)} solved, {len(failures)} failures "
          f"({result.wall_s:.1f} s)")
    return failures, by_id


def report(name: str, result: TeacherResult, seconds: float) -> None:
    counts = {k.removeprefix("teacher/"): int(v) for k, v in result.metrics.items()}
    print(f"\n{name} ({seconds:.1f} s): " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    reasons = Counter((r.method, r.status, (r.reason or "").removeprefix("does not parse: ")[:60])
                      for r in result.records)
    for (method, status, reason), n in reasons.most_common():
        print(f"  {n:3d} x {method:18s} {status:12s} {reason}")


def humaneval_check(accepted: list[Task], humaneval: list[Task], config: TeacherConfig) -> None:
    """How close each accepted task comes to HumanEval (the n-gram overlap of the decontamination screen)."""
    index = Decontaminator(humaneval, config.decontam)
    for task in accepted:
        closest = max(humaneval, key=lambda h: overlap(task.prompt, h.prompt, config.decontam.ngram))
        share = overlap(task.prompt, closest.prompt, config.decontam.ngram)
        flagged = index.check(task.prompt)
        print(f"  {task.payload['generator']['method']:18s} {task.payload['entry_point']:32s} closest HumanEval "
              f"{closest.id} overlap {share:.2f} (threshold {config.decontam.max_overlap}) "
              f"{'FLAGGED' if flagged else 'ok'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="embedded", help="policy spec of the teacher")
    parser.add_argument("--proposals", type=int, default=8)
    parser.add_argument("--student-tasks", type=int, default=6)
    parser.add_argument("--solver-attempts", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=320)
    parser.add_argument("--temperature", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=1,
                        help="teacher iterations, each on new student failures (the store carries accepted tasks over)")
    parser.add_argument("--mutation", default="fallback", choices=["off", "fallback", "always"],
                        help="the teacher's mutation candidates (TeacherConfig.mutation)")
    parser.add_argument("--store", default=None, help="run store directory (default: a temporary one)")
    parser.add_argument("--show", type=int, default=2, help="print this many raw proposals")
    args = parser.parse_args()

    started = time.perf_counter()
    student_policy = make_policy("embedded", device="cpu")
    student = LLMAgent(student_policy, AgentConfig(sampling=SamplingParams(max_tokens=192, temperature=0.7)))
    humaneval = list(humaneval_tasks().tasks("heldout"))
    heldout = [t for f in FAMILIES.values() for t in f.tasks("heldout", limit=20)] + humaneval
    config = TeacherConfig(enabled=True, proposals_per_iteration=args.proposals, solver_attempts=args.solver_attempts,
                           max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed,
                           mutation=args.mutation)
    directory = Path(args.store or tempfile.mkdtemp(prefix="teacher-run-"))
    with Store(directory) as store:
        store.create_run("teacher-run", {"teacher": args.teacher, "mutation": args.mutation})
        policy = student_policy if args.teacher == "embedded" else make_policy(args.teacher)
        teacher = Teacher(policy, config, store=store, run_id="teacher-run", teacher_id=f"teacher:{args.teacher}")
        first: tuple[list, dict[str, Task]] | None = None
        for iteration in range(args.iterations):
            failures, tasks_by_id = student_failures(student, args.student_tasks, args.seed + iteration)
            first = first or (failures, tasks_by_id)
            clock = time.perf_counter()
            result = teacher.propose(failures, tasks_by_id, iteration=iteration, pass_rates=rollout_pass_rates(student),
                                     heldout=heldout)
            report(f"iteration {iteration}: teacher {args.teacher}, mutation {args.mutation}", result,
                   time.perf_counter() - clock)
            humaneval_check(result.accepted, humaneval, config)
            store.log_metrics("teacher-run", iteration, result.metrics)
        assert first is not None
        failures, tasks_by_id = first

        # baseline on the first iteration's failures: the oracle proposal of each failed task, LLM path only
        parents = [teacher_context[0] for teacher_context in teacher.contexts(failures, tasks_by_id, iteration=0)]
        replies = [render_proposal(oracle_proposal(p)) for p in parents]
        # long enough that no oracle proposal is cut
        scripted = Teacher(FunctionPolicy(lambda chat: replies.pop(0), name="oracle"),
                           dataclasses.replace(config, max_tokens=4096, mutation="off"), store=store,
                           run_id="teacher-run-baseline", teacher_id="oracle")
        clock = time.perf_counter()
        baseline = scripted.propose(failures, tasks_by_id, iteration=0, pass_rates=rollout_pass_rates(student), heldout=heldout)
        report("baseline: scripted oracle teacher", baseline, time.perf_counter() - clock)

    def rate(r: TeacherResult, key: str) -> float:
        return r.metrics[key] / r.metrics["teacher/proposed"] if r.metrics["teacher/proposed"] else 0.0

    for key in ("teacher/valid", "teacher/accepted"):
        ours, base = rate(result, key), rate(baseline, key)
        ratio = f"{ours / base:.2f}x" if base else "n/a (baseline 0)"
        print(f"{key.removeprefix('teacher/')} rate (last iteration): {ours:.2f} vs baseline {base:.2f} -> {ratio}")
    for record in result.records[: args.show]:
        print(f"\n--- proposal for {record.parent_id} ({record.status}: {record.reason})\n{record.text[:900]}")
    print(f"\nstore: {directory}  total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
