"""Mutation candidates (``selfgym.envs.generators.mutate``) and the teacher's mutation fallback, with
the real sandbox, the real judge, a real SQLite store and a scripted policy."""

from __future__ import annotations

import ast
import copy

import pytest
from test_generators_env import PatternSolver

import selfgym
from selfgym.agents.teacher import Teacher, TeacherConfig
from selfgym.agents.testing import FunctionPolicy
from selfgym.decontam import Decontaminator
from selfgym.envs.code.datasets import humaneval_prompt, humaneval_tasks
from selfgym.envs.code.families import FAMILIES
from selfgym.envs.generators.context import oracle_proposal
from selfgym.envs.generators.env import code_sandbox
from selfgym.envs.generators.mutate import KINDS, Mutator, chains
from selfgym.envs.generators.proposal import Proposal, proposal_task, render_proposal, validate_proposal
from selfgym.run.passrates import rollout_pass_rates
from selfgym.store import Store
from selfgym.types import Task, Trajectory, Turn

TRAIN = [t for family in FAMILIES.values() for t in family.tasks("train", limit=6)]
BY_ID = {t.id: t for t in TRAIN}
HUMANEVAL = list(humaneval_tasks().tasks("heldout"))
HELDOUT = [t for family in FAMILIES.values() for t in family.tasks("heldout", limit=5)] + HUMANEVAL
IS_EVEN = BY_ID["arithmetic/s0/d0.0"]


@pytest.fixture(scope="module")
def sandbox():
    return code_sandbox(None)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "store.sqlite") as store:
        yield store


def failure(task: Task, answer: str = "Sorry, I cannot do that.") -> Trajectory:
    return Trajectory(task_id=task.id, env_id="selfgym/Code-v0", success=False,
                      turns=[Turn(observation=task.prompt, action=answer)],
                      info={"final_observation": "Attempt 1 of 1 failed. 0/6 tests passed."})


def variant_of(task: Task):
    return next(v for v in FAMILIES[task.family].variants if v.name == task.payload["variant"])


def test_every_kind_gives_valid_tasks_in_the_sandbox_with_the_described_prompts(sandbox):
    mutator = Mutator(sandbox, known=TRAIN, seed=1)
    made = {kind: [m for t in TRAIN[::3] if (m := mutator.mutate(kind, t)) is not None] for kind in KINDS}
    assert all(len(made[kind]) >= 3 for kind in KINDS), {k: len(v) for k, v in made.items()}
    for kind, pairs in made.items():
        for proposal, task in pairs:
            validation = validate_proposal(proposal, sandbox)
            assert validation.valid, (kind, task.id, validation.reason)
            assert validation.failing_caught == len(proposal.failing)
            assert task.payload["generator"]["method"] == f"mutation:{kind}" and task.split == "generated"
            assert task.prompt == proposal.prompt()  # the judge screens what the solver sees
            # plausible wrong answers, not only a do-nothing function
            assert any("return None" not in wrong for wrong in proposal.failing)
    for proposal, task in made["easier"]:
        parent = BY_ID[task.parent_id]
        assert task.prompt.startswith(f"Write a Python function `{proposal.entry_point}(")
        assert proposal.entry_point == parent.payload["entry_point"] and task.difficulty < max(parent.difficulty, 0.01)
        assert len(proposal.tests) <= len(parent.payload["tests"])
    for proposal, task in made["docstring"]:
        stub = task.payload["stub"]
        assert task.prompt == humaneval_prompt(proposal.entry_point, stub)
        assert task.prompt.startswith(f"Complete the Python function `{proposal.entry_point}` below and reply "
                                      "with the complete function.\n\n```python\ndef ")
        docstring = ast.get_docstring(ast.parse(stub).body[0])
        assert proposal.instruction in docstring
        shown = [line.strip() for line in stub.splitlines()]
        calls = [f"assert {line[4:]} == {shown[i + 1]}" for i, line in enumerate(shown) if line.startswith(">>> ")]
        assert calls and set(calls) <= set(proposal.tests)  # each example is one of the tests
    # HumanEval uses the same prompt function
    assert all(t.prompt == humaneval_prompt(t.payload["entry_point"], t.payload["stub"]) for t in HUMANEVAL[:20])


def test_a_mutated_task_plays_in_the_code_env(sandbox):
    proposal, task = Mutator(sandbox, known=TRAIN).mutate("docstring", IS_EVEN)
    env = selfgym.make("selfgym/Code-v0")
    try:
        observation, _ = env.reset(options={"task": task})
        assert observation.startswith("Complete the Python function `is_even`")
        assert env.step(env.unwrapped.oracle_action())[1] == 1.0
        env.reset(options={"task": task})
        body = "```python\n    return n % 2 == 1\n```"  # a body alone is completed from the docstring stub
        assert env.step(body)[1] == 0.0
    finally:
        env.close()


def test_composed_expected_values_are_g_of_f_from_the_family_references(sandbox):
    mutator = Mutator(sandbox, known=TRAIN, seed=0)
    composed = [m for t in TRAIN for m in [mutator.mutate("compose", t)] if m is not None]
    assert len(composed) >= 5
    components: list[bool] = []
    for proposal, task in composed:
        f_task, g_task = (BY_ID[p] for p in task.payload["generator"]["parents"])
        f, g = variant_of(f_task), variant_of(g_task)
        assert f_task.family != g_task.family and chains(f, g)
        assert proposal.entry_point == f"{g.name}_after_{f.name}"
        for test in proposal.tests:
            compare = ast.parse(test).body[0].test
            args = tuple(ast.literal_eval(a) for a in compare.left.args)
            expected = ast.literal_eval(compare.comparators[0])
            assert expected == g.function(f.function(*copy.deepcopy(args))), test
        wrong = "\n".join(proposal.failing)
        components += [f"return {f.name}(" in wrong, f"return {g.name}(" in wrong]
        assert "_off_by_one(" in wrong and validate_proposal(proposal, sandbox).valid
    # a component alone is a failing example wherever the tests catch it (g(f(x)) == f(x) happens)
    assert sum(components) >= len(composed)


def test_candidates_are_deterministic_given_the_seed(sandbox):
    failures = [(t, None) for t in TRAIN[:12]]

    def make(seed: int, iteration: int = 0) -> list[tuple[str, str, tuple[str, ...]]]:
        pairs = Mutator(sandbox, known=TRAIN, seed=seed).candidates(failures, iteration=iteration)
        return [(task.id, task.prompt, proposal.tests) for proposal, task in pairs]

    first = make(3)
    assert len(first) >= 12 and make(3) == first
    assert make(4) != first and make(3, iteration=1) != first


def test_the_students_failed_answer_is_a_failing_example_only_while_it_still_fails(sandbox):
    mutator = Mutator(sandbox, known=TRAIN)
    wrong = "def is_even(n):\n    return n % 2 == 1\n"
    right = "def is_even(n):\n    return n % 2 == 0\n"
    proposal, _ = mutator.mutate("easier", IS_EVEN, answer=f"Here it is:\n```python\n{wrong}```")
    assert wrong in proposal.failing and validate_proposal(proposal, sandbox).valid
    proposal, _ = mutator.mutate("easier", IS_EVEN, answer=f"```python\n{right}```")
    assert right not in proposal.failing and validate_proposal(proposal, sandbox).valid


# ----------------------------------------------------------------------------- from the attacker's side
def generated_parent(proposal: Proposal) -> Task:
    return proposal_task(proposal, parent_id=TRAIN[0].id, source="teacher:someone")


def test_a_parent_whose_reference_fails_its_own_tests_yields_no_accepted_mutation(sandbox, store):
    # the long test is the one the reference fails: an unverified "easier" subset would drop it and pass
    broken = generated_parent(Proposal(
        instruction="Return the number of upper-case letters in the string s.", entry_point="count_upper",
        tests=('assert count_upper("") == 0', 'assert count_upper("A") == 1', 'assert count_upper("ab") == 0',
               'assert count_upper("ABC") == 3', 'assert count_upper("Hello World, Again And Again!") == 6'),
        reference="def count_upper(s):\n    return sum(ch.isupper() for ch in s[:20])\n",
        failing=("def count_upper(s):\n    return len(s)\n",)))
    assert Mutator(sandbox, known=TRAIN).candidates([(broken, None)]) == []
    teacher = Teacher(FunctionPolicy(lambda chat: "no idea", name="garbage"),
                      TeacherConfig(proposals_per_iteration=3, mutation="always"), store=store, run_id="r",
                      teacher_id="t")
    result = teacher.propose([failure(broken)], {broken.id: broken, **BY_ID}, iteration=1, heldout=HELDOUT,
                             pass_rates=rollout_pass_rates(PatternSolver([True, False])))
    assert result.accepted == [] and result.metrics["teacher/accepted_mutation"] == 0
    assert store.tasks(split="generated") == []


def test_a_near_copy_of_a_humaneval_task_yields_only_decontam_rejections(sandbox, store):
    original = next(t for t in HUMANEVAL if t.id == "HumanEval/0")
    copied = generated_parent(Proposal(
        instruction="Check if in given list of numbers, are any two numbers closer to each other than given "
                    "threshold.", entry_point="has_close_elements",
        tests=("assert has_close_elements([1.0, 2.0, 3.0], 0.5) == False",
               "assert has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3) == True",
               "assert has_close_elements([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05) == False",
               "assert has_close_elements([1.0, 2.0, 5.9, 4.0, 5.0], 0.95) == True"),
        reference=original.payload["reference"],
        failing=("from typing import List\n\n\ndef has_close_elements(numbers: List[float], threshold: float) "
                 "-> bool:\n    return False\n",)))
    teacher = Teacher(FunctionPolicy(lambda chat: "no idea", name="garbage"),
                      TeacherConfig(proposals_per_iteration=4, mutation="always"), store=store, run_id="r",
                      teacher_id="t")
    result = teacher.propose([failure(copied)], {copied.id: copied, **BY_ID}, iteration=1, heldout=HELDOUT,
                             pass_rates=rollout_pass_rates(PatternSolver([True, False])))
    mutations = [r for r in result.records if r.method.startswith("mutation:")]
    assert {r.method for r in mutations} == {"mutation:easier", "mutation:docstring"}
    assert all(r.status == "decontam" and "HumanEval/0" in (r.reason or "") for r in mutations), \
        [(r.method, r.status, r.reason) for r in mutations]
    assert result.accepted == [] and result.metrics["teacher/rejected_decontam"] == len(mutations)


# ----------------------------------------------------------------------------- the teacher's modes
def propose(store: Store, mutation: str, reply=lambda chat: "I think a good task is sorting.", n: int = 3):
    teacher = Teacher(FunctionPolicy(reply, name="scripted"),
                      TeacherConfig(proposals_per_iteration=n, solver_attempts=2, mutation=mutation),
                      store=store, run_id="r", teacher_id="t")
    parents = [BY_ID[i] for i in ("lists/s2/d0.5", "arithmetic/s5/d0.0", "strings/s2/d0.5")]
    return teacher.propose([failure(p) for p in parents], dict(BY_ID), iteration=1, heldout=HELDOUT,
                           pass_rates=rollout_pass_rates(PatternSolver([True, False])))


def test_fallback_fills_the_quota_with_mutations_when_the_policy_writes_garbage(store):
    result = propose(store, "fallback")
    m = result.metrics
    assert m["teacher/accepted"] == len(result.accepted) == 3  # the quota, no more
    assert m["teacher/accepted_mutation"] == 3 and m["teacher/accepted_llm"] == 0
    assert m["teacher/proposed"] == 3 + m["teacher/proposed_mutation"] and m["teacher/rejected_invalid"] >= 3
    stored = store.tasks(split="generated")
    assert sorted(t.id for t in stored) == sorted(t.id for t in result.accepted)
    humaneval = Decontaminator(HUMANEVAL)
    for task in stored:
        generator = task.payload["generator"]
        assert generator["method"].startswith("mutation:") and generator["pass_rate"] == 0.5
        assert len(generator["parents"]) == (2 if generator["method"] == "mutation:compose" else 1)
        assert task.parent_id in BY_ID and task.source == "teacher:t"
        assert humaneval.check(task.prompt) is None


def test_off_accepts_nothing_from_a_garbage_policy(store):
    result = propose(store, "off")
    assert result.accepted == [] and result.metrics["teacher/proposed"] == 3
    assert result.metrics["teacher/proposed_mutation"] == 0 and store.tasks(split="generated") == []


def test_the_llm_is_preferred_and_always_adds_mutations_beside_it(store):
    replies = {p: render_proposal(oracle_proposal(BY_ID[p])) for p in ("lists/s2/d0.5", "arithmetic/s5/d0.0",
                                                                       "strings/s2/d0.5")}

    def reply(chat):
        return next(text for parent, text in replies.items() if BY_ID[parent].prompt in chat[-1]["content"])

    full = propose(store, "fallback", reply)
    assert (full.metrics["teacher/accepted_llm"], full.metrics["teacher/proposed_mutation"]) == (3, 0)
    assert {t.payload["generator"]["method"] for t in full.accepted} == {"llm"}
    result = propose(store, "always", lambda chat: "garbage", n=2)
    assert result.metrics["teacher/accepted_mutation"] == 2
