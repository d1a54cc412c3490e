"""Berkeley Function Calling Leaderboard-format data as a held-out set: loader and ``ToolsBFCL-v0``.

BFCL files are JSON Lines: questions ``{"id", "question": [[messages]], "function": [...]}`` and,
in a second file, answers ``{"id", "ground_truth": [{name: {param: [accepted values]}}]}``. The
category comes from the id (``simple_python_3`` -> ``simple_python``). Supported: the
single-turn Python categories (``simple_python``, ``multiple``, ``parallel``,
``parallel_multiple``, ``irrelevance`` and their ``live_`` versions).

``load_bfcl()`` reads the small sample bundled with selfgym; ``load_bfcl(category=...)`` the data of
an installed ``bfcl-eval`` package (Apache-2.0; not a dependency of selfgym, since it pins many
heavy packages); ``load_bfcl(path, answers)`` any files in the format.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

from selfgym.errors import ConfigError
from selfgym.types import Split, Task

from ..base import LLMEnv, StepResult
from ..tasks import ListTaskSource, TaskSource, read_jsonl
from .bfcl_ast import ast_check
from .calls import FinalAnswer, ToolCall, answer_text, parse_tool_action

__all__ = ["BFCLEnv", "bfcl_category", "load_bfcl", "to_openai_tools"]

DATA_DIR = Path(__file__).with_name("data")
_ID = re.compile(r"^(?P<category>.+?)_\d+(?:-\d+)*$")
_SUPPORTED = re.compile(r"^(live_)?(simple(_python)?|multiple|parallel|parallel_multiple|irrelevance)$")
_TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": None}
_BAD_NAME = re.compile(r"[^A-Za-z0-9_-]")


def bfcl_category(record_id: str) -> str:
    """``simple_python_3`` -> ``simple_python``; ``live_multiple_7-2-0`` -> ``live_multiple``."""
    match = _ID.match(record_id)
    if not match:
        raise ValueError(f"BFCL id {record_id!r} does not end in _<number>")
    return match["category"]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [record for _, record in read_jsonl(path)]


def _installed_files(category: str) -> tuple[Path, Path]:
    spec = importlib.util.find_spec("bfcl_eval")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"BFCL category {category!r} needs the bfcl-eval package (pip install bfcl-eval), "
                          "or pass path= to BFCL-format files")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    found = sorted(data.glob(f"BFCL_v*_{category}.json"))
    if not found:
        raise ConfigError(f"no BFCL file for category {category!r} in {data}")
    return found[-1], data / "possible_answer" / found[-1].name


def load_bfcl(
    path: str | Path | None = None,
    answers: str | Path | None = None,
    *,
    category: str | None = None,
    split: Split = "heldout",
    limit: int | None = None,
    name: str | None = None,
) -> ListTaskSource:
    """Load BFCL-format questions and answers as tasks (split ``heldout`` by default).

    Args:
        path: a questions file; default: the bundled sample, or the installed package's file for
            ``category``.
        answers: the answers file; default: ``possible_answer/<same name>`` next to ``path``, or
            ``<stem>_answers.jsonl``. Irrelevance questions need none.
        category: with no ``path``: load this category from the installed ``bfcl-eval`` package.
        split: the split the tasks belong to.
        limit: keep only the first ``limit`` questions.
        name: the task source's name.
    """
    if path is None:
        if category is None:
            path, answers = DATA_DIR / "bfcl_sample.jsonl", DATA_DIR / "bfcl_sample_answers.jsonl"
        else:
            path, answers = _installed_files(category)
    path = Path(path)
    if answers is None:
        candidates = [path.parent / "possible_answer" / path.name, path.with_name(f"{path.stem}_answers.jsonl")]
        answers = next((c for c in candidates if c.exists()), None)
    truth = _read_answers(Path(answers)) if answers else {}
    tasks = []
    for record in _read_jsonl(path)[:limit]:
        tasks.append(_task(record, truth, path.name, split))
    return ListTaskSource(tasks, name=name or f"bfcl:{path.stem}")


def _read_answers(path: Path) -> dict[str, Any]:
    truth = {}
    for index, record in enumerate(_read_jsonl(path), start=1):
        if not isinstance(record, dict) or "id" not in record or "ground_truth" not in record:
            raise ValueError(f"{path}: record {index} has no 'id' and 'ground_truth'; is this an answers file?")
        truth[record["id"]] = record["ground_truth"]
    return truth


def _task(record: dict[str, Any], truth: dict[str, Any], source: str, split: Split) -> Task:
    record_id = record["id"]
    category = bfcl_category(record_id)
    if not _SUPPORTED.match(category):
        raise ConfigError(f"BFCL category {category!r} ({record_id}) is not supported; supported are the "
                          "single-turn Python ones: simple_python, multiple, parallel, parallel_multiple, irrelevance")
    if "irrelevance" not in category and record_id not in truth:
        raise ValueError(f"BFCL question {record_id!r} has no ground truth in the answers file")
    turn = record["question"][0]
    prompt = "\n".join(m["content"] for m in turn if m["role"] == "user")
    system = "\n".join(m["content"] for m in turn if m["role"] == "system")
    return Task(
        id=f"bfcl/{record_id}", family=f"bfcl-{category}", prompt=prompt, split=split, source=f"bfcl:{source}",
        payload={"category": category, "functions": record["function"], "ground_truth": truth.get(record_id, []),
                 "system": system},
    )


def _schema(node: Any) -> Any:
    """BFCL parameter types (``dict``, ``float``, ``tuple``, ``any``) as JSON Schema."""
    if not isinstance(node, dict):
        return node
    out = dict(node)
    kind = node.get("type")
    if isinstance(kind, str) and kind in _TYPES:
        if _TYPES[kind] is None:
            del out["type"]
        else:
            out["type"] = _TYPES[kind]
    if isinstance(node.get("properties"), dict):
        out["properties"] = {name: _schema(s) for name, s in node["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            out[key] = _schema(node[key])
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(node.get(key), list):
            out[key] = [_schema(s) for s in node[key]]
    return out


def to_openai_tools(functions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """BFCL function docs in the OpenAI format; ``.`` in names becomes ``_`` (as function-calling APIs need)."""
    return [{"type": "function", "function": {"name": _BAD_NAME.sub("_", f["name"]),
                                              "description": f.get("description", ""),
                                              "parameters": _schema(f.get("parameters", {"type": "dict"}))}}
            for f in functions]


class BFCLEnv(LLMEnv):
    """Answer a BFCL question with function calls, scored by AST match.

    Observation:
        The question; after the action, the score and the first mismatch.

    Actions:
        The function calls, as JSON (``{"name", "arguments"}`` or a list of them) or Python
        syntax (``[f(a=1), g(b=2)]``); names may use ``_`` for ``.``. For a question none of the
        functions can answer (``irrelevance``), ``<answer>...</answer>`` with no call.

    Rewards:
        1 if the calls match the ground truth (BFCL's AST rules), else 0.

    Episode End:
        Terminated after the first well-formed action; a malformed one is an error observation and
        with ``max_episode_steps=1`` (the registration) the episode is truncated, as BFCL counts an
        unparsable output as wrong.

    Arguments:
        task_source: default ``load_bfcl()`` (the bundled sample). split defaults to ``heldout``.

    Version History:
        v0: initial version. Irrelevance needs an explicit ``<answer>``, not any non-call text.
    """

    def __init__(self, *, task_source: TaskSource | None = None, split: Split = "heldout",
                 difficulty: float | None = None, render_mode: str | None = None) -> None:
        super().__init__(task_source=task_source, split=split, difficulty=difficulty, render_mode=render_mode)

    def default_task_source(self) -> TaskSource:
        return load_bfcl()

    def setup(self, task: Task) -> str:
        return f"{task.payload['system']}\n\n{task.prompt}".strip()

    def tools(self) -> list[dict[str, Any]]:
        return to_openai_tools(self.task.payload["functions"]) if self.task is not None else []

    def instructions(self, task: Task) -> str:
        listing = json.dumps(task.payload["functions"], ensure_ascii=False)
        return ("Answer the question by calling the functions below. Reply with the call(s) only: a JSON object "
                '{"name": ..., "arguments": {...}} or a JSON list of them, or Python syntax [func(arg=value)]. '
                "If none of the functions can answer the question, make no call and reply with "
                f"<answer>the reason</answer>.\n\nFunctions: {listing}")

    def parse_action(self, action: str) -> tuple[ToolCall, ...] | FinalAnswer:
        return parse_tool_action(action, max_calls=64)

    def env_response(self, action: tuple[ToolCall, ...] | FinalAnswer) -> StepResult:
        assert self.task is not None
        payload = self.task.payload
        if "irrelevance" in payload["category"]:
            ok = isinstance(action, FinalAnswer)
            message = "correct: no function fits" if ok else "incorrect: none of the functions fits this question"
        elif isinstance(action, FinalAnswer):
            ok, message = False, "incorrect: the question needs a function call"
        else:
            result = ast_check(payload["functions"], [(c.name, c.arguments) for c in action],
                               payload["ground_truth"], payload["category"])
            ok, message = result.valid, "correct" if result.valid else f"incorrect: {result.error}"
        return StepResult(observation=message, reward=float(ok), terminated=True, success=ok,
                          info={"bfcl_category": payload["category"]})

    def oracle_action(self) -> str:
        assert self.task is not None
        if "irrelevance" in self.task.payload["category"]:
            return answer_text("None of the functions can answer this question.")
        calls = []
        for entry in self.task.payload["ground_truth"]:
            (name, accepted), = entry.items()
            calls.append({"name": name, "arguments": _first_accepted(accepted)})
        if not calls:
            raise ValueError(f"task {self.task.id!r} has no ground truth to play")
        return json.dumps(calls if len(calls) > 1 else calls[0], ensure_ascii=False)


def _first_accepted(accepted: dict[str, list[Any]], *, nested: bool = True) -> dict[str, Any]:
    """One call's arguments from BFCL ground truth: the first accepted value of each parameter,
    optional ones (only ``""`` accepted) left out. A dict value (or a list of dicts) holds accepted
    values per key in turn, one level deep."""
    arguments = {}
    for param, values in accepted.items():
        value = next((v for v in values if v != ""), "")
        if value == "":
            continue
        if nested and isinstance(value, dict):
            value = _first_accepted(value, nested=False)
        elif nested and isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            value = [_first_accepted(v, nested=False) for v in value]
        arguments[param] = value
    return arguments
