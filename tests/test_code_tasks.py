"""Code task sources: the procedural families, HumanEval, MBPP and JSONL files, checked in the sandbox."""

from __future__ import annotations

import ast
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import selfgym
from selfgym.envs.code.datasets import function_context, humaneval_tasks, jsonl_tasks, mbpp_tasks
from selfgym.envs.code.families import FAMILIES, code_tasks
from selfgym.envs.code.feedback import format_feedback
from selfgym.envs.code.sandbox import SandboxConfig, make_sandbox
from selfgym.envs.code.verifier import HARNESS_MODULE, harness_source, verify
from selfgym.envs.tasks import HELDOUT_SEED_BASE
from selfgym.errors import ConfigError, SandboxError


@pytest.fixture(scope="module")
def box():
    try:
        sandbox = make_sandbox(SandboxConfig(backend="bwrap", modules=((HARNESS_MODULE, harness_source()),)))
    except SandboxError as exc:
        pytest.skip(f"bwrap does not work on this host: {exc}")
    yield sandbox
    sandbox.close()


def _one_task_per_variant():
    """A task for every variant of every family (seeds scanned in a fixed order)."""
    found = {}
    for family in FAMILIES.values():
        for seed in range(200):
            for difficulty in (0.0, 0.5, 1.0):
                task = family.make(seed, difficulty)
                found.setdefault(task.payload["variant"], task)
    return found


VARIANT_TASKS = _one_task_per_variant()


def test_at_least_six_families_each_with_every_tier():
    assert len(FAMILIES) >= 6
    for family in FAMILIES.values():
        assert {v.tier for v in family.variants} == {0, 1, 2}, family.family
    assert len(VARIANT_TASKS) == sum(len(f.variants) for f in FAMILIES.values())


def test_every_variant_reference_passes_and_a_do_nothing_fails(box):
    def check(task):
        entry = task.payload["entry_point"]
        good = verify(box, task.payload["reference"], task.payload)
        bad = verify(box, f"def {entry}(*args):\n    pass\n", task.payload)
        return task, good, bad

    with ThreadPoolExecutor(2) as pool:
        for task, good, bad in pool.map(check, VARIANT_TASKS.values()):
            assert good.passed, f"{task.id}: {format_feedback(good)}"
            assert not bad.passed, task.id


def _shown_examples(prompt: str) -> list[tuple[str, tuple, object]]:
    """``(call, args, expected)`` of each ``name(args) == expected`` line under the prompt's "Examples:"."""
    shown = []
    for line in prompt.split("Examples:\n", 1)[1].splitlines():
        compare = ast.parse(line.strip(), mode="eval").body
        assert isinstance(compare, ast.Compare) and isinstance(compare.left, ast.Call), line
        args = tuple(ast.literal_eval(a) for a in compare.left.args)
        shown.append((ast.unparse(compare.left), args, ast.literal_eval(compare.comparators[0])))
    return shown


def test_expected_values_are_python_literals_and_examples_are_hidden_tests_too():
    for task in VARIANT_TASKS.values():
        hidden = [(ast.literal_eval(t["args"]), ast.literal_eval(t["expected"])) for t in task.payload["tests"]]
        shown = _shown_examples(task.prompt)
        assert len(shown) == len(task.payload["examples"]) >= 1, task.id
        assert [call for call, _, _ in shown] == [ast.unparse(ast.parse(e, mode="eval")) for e in
                                                  task.payload["examples"]], task.id
        for call, args, expected in shown:  # what the prompt promises is checked, with the same value
            assert (args, expected) in hidden, f"{task.id}: example {call} == {expected!r} is not a hidden test"
        assert len(hidden) > len(shown), task.id  # and there are tests the agent never saw


def test_same_seed_same_task_and_heldout_seeds_are_a_separate_split():
    family = FAMILIES["lists"]
    assert family.make(7, 0.5) == family.make(7, 0.5)
    assert family.make(7, 0.5).split == "train"
    heldout = family.make(HELDOUT_SEED_BASE + 7, 0.5)
    assert heldout.split == "heldout" and family.get(heldout.id) == heldout
    source = code_tasks()
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    assert source.sample(rng_a, split="heldout") == source.sample(rng_b, split="heldout")
    assert all(t.split == "heldout" for t in source.tasks("heldout", limit=14))
    assert {t.family for t in source.tasks("train", limit=7)} == set(FAMILIES)


def test_difficulty_moves_the_tier_and_the_number_of_tests():
    family = FAMILIES["arithmetic"]
    easy = [family.make(seed, 0.0) for seed in range(20)]
    hard = [family.make(seed, 1.0) for seed in range(20)]
    assert {t.payload["tier"] for t in easy} == {0} and {t.payload["tier"] for t in hard} == {2}
    assert max(len(t.payload["tests"]) for t in easy) < min(len(t.payload["tests"]) for t in hard)


def test_difficulty_zero_includes_one_line_problems_for_tiny_models():
    names = {FAMILIES["arithmetic"].make(seed, 0.0).payload["variant"] for seed in range(50)}
    assert {"add", "subtract", "multiply"} <= names
    task = FAMILIES["arithmetic"].make(0, 0.0)
    assert task.prompt.startswith("Write a Python function `") and "Examples:" in task.prompt


def test_task_sources_are_registered():
    assert {"code", "humaneval", "mbpp", "code-jsonl"} <= set(selfgym.list_task_sources())
    assert len(list(selfgym.make_task_source("code", families=["strings"]).tasks("train", limit=3))) == 3
    with pytest.raises(ConfigError, match="unknown code task family"):
        code_tasks(["nope"])


# ----------------------------------------------------------------------------- HumanEval
CORRUPTION = """
_original = {name}
def {name}(*args, **kwargs):
    result = _original(*args, **kwargs)
    if isinstance(result, bool):
        return not result
    if isinstance(result, (int, float)):
        return result + 1
    if isinstance(result, str):
        return result + "?"
    if isinstance(result, (list, tuple)):
        return type(result)(list(result) + [None])
    return "corrupted"
"""


def test_every_humaneval_canonical_solution_passes_and_a_corrupted_one_fails(box):
    tasks = list(humaneval_tasks().tasks("heldout"))
    assert len(tasks) == 164

    def check(task):
        good = verify(box, task.payload["reference"], task.payload)
        bad = verify(box, task.payload["reference"] + CORRUPTION.format(name=task.payload["entry_point"]), task.payload)
        return task, good, bad

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(check, tasks))
    assert [t.id for t, good, _ in results if not good.passed] == []
    assert [t.id for t, _, bad in results if bad.passed] == []
    failing = results[0][2]
    assert "expected" in format_feedback(failing)
    assert box.stats["retried"] == 0  # no worker broke on the way


def test_humaneval_preamble_keeps_imports_and_helpers():
    task = humaneval_tasks().get("HumanEval/32")  # find_zero relies on the poly helper of its prompt
    assert "def poly" in task.payload["preamble"] and "def find_zero" not in task.payload["preamble"]
    assert function_context("import math\n\ndef f(x):\n    pass\n", "f").strip() == "import math"


# ----------------------------------------------------------------------------- MBPP and JSONL
MBPP_RECORDS = [
    {"task_id": 601, "text": "Write a function to find the maximum of three numbers.",
     "code": "def max_of_three(a, b, c):\n    return max(a, b, c)",
     "test_list": ["assert max_of_three(1, 2, 3) == 3", "assert max_of_three(5, 2, 3) == 5",
                   "assert max_of_three(-1, -2, -3) == -1"], "test_setup_code": "", "challenge_test_list": []},
    {"task_id": 12, "text": "Write a function to count words in a sentence.",
     "code": "def count_words(s):\n    return len(s.split())",
     "test_list": ["assert count_words('a b c') == 3", "assert count_words('') == 0"],
     "test_setup_code": "", "challenge_test_list": ["assert count_words('  x  ') == 1"]},
]


def test_mbpp_file_loads_with_splits_entry_points_and_assert_feedback(tmp_path, box):
    path = tmp_path / "mbpp.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in MBPP_RECORDS) + "\n")
    source = mbpp_tasks(path, include_challenge=True)
    train, heldout = source.get("mbpp/601"), source.get("mbpp/12")
    assert train.split == "train" and heldout.split == "heldout"
    assert train.payload["entry_point"] == "max_of_three" and "assert max_of_three(1, 2, 3) == 3" in train.prompt
    assert "max_of_three(5, 2, 3)" not in train.prompt  # only the first test is shown
    assert len(heldout.payload["tests"]) == 3
    assert verify(box, train.payload["reference"], train.payload).passed
    wrong = verify(box, "def max_of_three(a, b, c):\n    return a", train.payload)
    assert wrong.n_passed == 2 and "assert max_of_three(1, 2, 3) == 3 failed: got 1, expected 3" in format_feedback(wrong)


def test_jsonl_tasks_in_every_test_shape(tmp_path, box):
    rows = [
        {"id": "sum-io", "prompt": "Read two integers and print their sum.",
         "tests": [{"input": "1 2\n", "output": "3\n"}, {"input": "-5 5\n", "output": "0"}],
         "solution": "a, b = map(int, input().split())\nprint(a + b)"},
        {"id": "neg", "prompt": "Write neg(x).", "entry_point": "neg", "tests": ["assert neg(2) == -2"],
         "reference": "def neg(x):\n    return -x"},
        {"id": "sq", "prompt": "Write sq(x).", "entry_point": "sq",
         "tests": [{"args": "(3,)", "expected": "9"}], "reference": "def sq(x):\n    return x * x"},
        {"id": "he", "prompt": "Write inc(x).", "entry_point": "inc", "split": "heldout",
         "test": "def check(candidate):\n    assert candidate(1) == 2\n", "canonical_solution": "def inc(x):\n    return x + 1"},
    ]
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    source = jsonl_tasks(path)
    assert len(source) == 4 and source.get("he").split == "heldout"
    for row in rows:
        task = source.get(row["id"])
        assert verify(box, task.payload["reference"], task.payload).passed, row["id"]
    io_task = source.get("sum-io")
    wrong = verify(box, "a, b = map(int, input().split())\nprint(a * b)", io_task.payload)
    assert wrong.n_passed == 0 and "your program printed '2', expected '3'" in format_feedback(wrong)


def test_jsonl_tasks_with_unknown_tests_fail_at_load_time(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "x", "prompt": "p", "entry_point": "f", "tests": [42]}) + "\n")
    with pytest.raises(ValueError, match="task 'x'"):
        jsonl_tasks(path)
    path.write_text(json.dumps({"id": "y", "prompt": "p", "tests": ["assert f(1) == 1"]}) + "\n")
    with pytest.raises(ValueError, match="entry_point"):
        jsonl_tasks(path)
