"""Run a candidate program against a task's hidden tests in the sandbox and report per test.

A task's ``payload`` holds its tests in one of four shapes (``test_kind`` picks it):

- ``call``   ``tests=[{"args": "(1, 2)", "expected": "3"}, ...]`` (Python literals, from a reference)
- ``assert`` ``tests=["assert add(1, 2) == 3", ...]`` (MBPP)
- ``check``  ``test_code="def check(candidate): ..."`` (HumanEval)
- ``stdio``  ``tests=[{"input": "1 2\\n", "output": "3\\n"}, ...]`` (whole programs, no entry point)

plus ``entry_point``, and optionally ``preamble`` (imports and helpers the task gives, run before
the candidate) and ``setup_code``. A candidate's failure is a ``Verdict``; a verifier that cannot
run (broken sandbox, a harness without a report although the program did not exit) raises.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from selfgym.errors import InfrastructureError
from selfgym.types import ExecResult

from .harness import call_label, parse_call
from .sandbox import Sandbox

__all__ = ["HARNESS_MODULE", "TestOutcome", "Verdict", "VerifierConfig", "harness_source", "test_kind", "verify"]

log = logging.getLogger(__name__)

TestKind = Literal["call", "assert", "check", "stdio"]


@dataclass(frozen=True, kw_only=True)
class VerifierConfig:
    """Limits of one verification."""

    test_timeout_s: float = field(default=2.0, metadata={"help": "wall-clock limit of one test"})
    total_timeout_s: float = field(default=30.0, metadata={"help": "limit of the whole run (all tests)"})
    memory_mb: int = field(default=512, metadata={"help": "address-space limit of the program (MiB)"})


@dataclass(frozen=True, kw_only=True)
class TestOutcome:
    """One hidden test: what ran (``label``) and how it went."""

    passed: bool
    label: str
    expected: str | None = None
    got: str | None = None
    error: str | None = None
    traceback: str | None = None
    timed_out: bool = False


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """The result of one verification. ``problem`` is set when no test could run at all."""

    n_tests: int
    outcomes: tuple[TestOutcome, ...] = ()
    problem: str | None = None
    problem_kind: str | None = None  # syntax | load | missing | crash | timeout | memory
    stdout: str = ""
    exec_result: ExecResult | None = None

    @property
    def n_passed(self) -> int:
        return sum(outcome.passed for outcome in self.outcomes)

    @property
    def passed(self) -> bool:
        return self.problem is None and self.n_tests > 0 and self.n_passed == self.n_tests

    @property
    def fraction(self) -> float:
        return self.n_passed / self.n_tests if self.n_tests else 0.0

    @property
    def failures(self) -> list[TestOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.passed]


HARNESS_MODULE = "_selfgym_harness"
_RUN_HARNESS = f"import {HARNESS_MODULE}\n{HARNESS_MODULE}.main()\n"


@cache
def harness_source() -> str:
    """The in-sandbox test harness (``harness.py``); warm workers can preload it as ``HARNESS_MODULE``."""
    return Path(__file__).with_name("harness.py").read_text(encoding="utf-8")


def test_kind(payload: dict[str, Any]) -> TestKind:
    """Which of the four test shapes ``payload`` uses (``ValueError`` if none)."""
    if payload.get("test_kind"):
        return payload["test_kind"]
    if payload.get("test_code"):
        return "check"
    tests = payload.get("tests")
    if not isinstance(tests, list) or not tests:
        raise ValueError("a code task's payload needs 'tests' (a non-empty list) or 'test_code'")
    first = tests[0]
    if isinstance(first, str):
        return "assert"
    if isinstance(first, dict) and "args" in first:
        return "call"
    if isinstance(first, dict) and "input" in first:
        return "stdio"
    raise ValueError(f"unrecognised test format: {first!r:.200}")


def verify(sandbox: Sandbox, code: str, payload: dict[str, Any], config: VerifierConfig | None = None, *,
           files: dict[str, str] | None = None) -> Verdict:
    """Run ``code`` against the tests in ``payload`` inside ``sandbox``; ``files`` are extra modules
    placed next to it (e.g. ``skills.py``, importable by the code).

    The tests and a one-time nonce reach the harness's runner process on stdin (never on disk);
    the candidate runs in a process of its own (see ``harness.py``). The report is checked here as
    untrusted input: anything but one well-formed report line is a failed verdict saying why.
    """
    config = config or VerifierConfig()
    if test_kind(payload) == "stdio":
        return _verify_stdio(sandbox, code, payload, config, files)
    spec, n_tests, total = harness_spec(payload, config)
    nonce = secrets.token_hex(16)
    files = {**(files or {}), "solution.py": code}
    if HARNESS_MODULE not in getattr(sandbox, "preloaded", ()):
        files[f"{HARNESS_MODULE}.py"] = harness_source()
    result = sandbox.exec(_RUN_HARNESS, stdin=nonce + "\n" + json.dumps(spec), files=files, timeout_s=total,
                          memory_mb=config.memory_mb)
    return _verdict(result, nonce, spec, n_tests, total, config)


def harness_spec(payload: dict[str, Any], config: VerifierConfig) -> tuple[dict[str, Any], int, float]:
    """What the harness is told to run for ``payload`` (not ``stdio``), the number of tests, and the
    time limit of the whole run."""
    kind = test_kind(payload)
    n_tests = 1 if kind == "check" else len(payload["tests"])
    total = min(config.total_timeout_s, config.test_timeout_s * (n_tests + 1) + 1.0)
    spec = {
        "kind": kind, "entry_point": payload.get("entry_point"), "tests": payload.get("tests", []),
        "test_code": payload.get("test_code", ""), "preamble": payload.get("preamble", ""),
        "setup_code": payload.get("setup_code", ""), "test_timeout_s": config.test_timeout_s,
        "load_timeout_s": config.test_timeout_s, "check_timeout_s": max(total - config.test_timeout_s - 0.5, 1.0),
    }
    return spec, n_tests, total


class _BadReport(Exception):
    """The harness's report is not what a sound harness prints."""


def _verdict(result: ExecResult, nonce: str, spec: dict[str, Any], n_tests: int, total: float,
             config: VerifierConfig) -> Verdict:
    try:
        report = _read_report(result.stdout, nonce, spec, n_tests)
    except _BadReport as exc:
        log.warning("code verifier: rejected the harness report: %s", exc)
        return Verdict(n_tests=n_tests, problem=f"the test report could not be trusted ({exc}); no test counts as "
                       "passed", problem_kind="report", exec_result=result)
    if report is None:
        return _no_report(result, n_tests, total, config)
    if "harness_error" in report:
        raise InfrastructureError(f"the task's own test code failed in the sandbox: {report['harness_error']}")
    common = {"n_tests": n_tests, "stdout": report.get("stdout", ""), "exec_result": result}
    if "syntax_error" in report:
        err = report["syntax_error"]
        caret = " " * max((err.get("offset") or 1) - 1, 0) + "^"
        text = f"SyntaxError: {err['msg']} (line {err['line']})\n    {err['text']}\n    {caret}"
        return Verdict(problem=text, problem_kind="syntax", **common)
    if "load_error" in report:
        err = report["load_error"]
        text = f"your code raised {err['error']} while being defined" if not err.get("timed_out") else (
            f"your code {err['error']} (limit {config.test_timeout_s:g}s)")
        if err.get("traceback"):
            text += "\n" + err["traceback"]
        return Verdict(problem=text, problem_kind="load", **common)
    if "missing" in report:
        defined = report.get("defined") or []
        text = f"your code does not define a function named `{report['missing']}`"
        text += f" (it defines: {', '.join(defined)})" if defined else ""
        return Verdict(problem=text, problem_kind="missing", **common)
    outcomes = tuple(TestOutcome(**outcome) for outcome in report["tests"])
    return Verdict(outcomes=outcomes, **common)


_OUTCOME_FIELDS = {"passed": (bool,), "label": (str,), "expected": (str, type(None)), "got": (str, type(None)),
                   "error": (str, type(None)), "traceback": (str, type(None)), "timed_out": (bool,)}
_PROBLEM_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "syntax_error": {"msg": (str,), "line": (int, type(None)), "offset": (int, type(None)), "text": (str,)},
    "load_error": {"error": (str,), "traceback": (str, type(None)), "timed_out": (bool,)},
}
MAX_FIELD = 4000


def _read_report(stdout: str, nonce: str, spec: dict[str, Any], n_tests: int) -> dict[str, Any] | None:
    """The harness's one report line, checked field by field; None when there is none."""
    marker = f"@@result-{nonce}@@"
    lines = [line for line in stdout.splitlines() if line.strip()]
    marked = [line for line in lines if line.startswith(marker)]
    if not marked:
        if lines:
            raise _BadReport("output other than the report")
        return None
    if len(lines) != 1:
        raise _BadReport(f"{len(marked)} report lines and {len(lines) - len(marked)} other lines")
    try:
        report = json.loads(marked[0][len(marker):])
    except (ValueError, RecursionError) as exc:
        raise _BadReport(f"not JSON: {exc}") from None
    if not isinstance(report, dict):
        raise _BadReport("not an object")
    unknown = set(report) - {"tests", "stdout", "syntax_error", "load_error", "missing", "defined", "harness_error"}
    if unknown:
        raise _BadReport(f"unknown fields {sorted(unknown)}")
    _check(report, "stdout", (str,))
    tests = report.get("tests")
    if not isinstance(tests, list):
        raise _BadReport("no test list")
    problems = [key for key in ("syntax_error", "load_error", "missing", "harness_error") if key in report]
    if len(problems) > 1 or problems and tests:
        raise _BadReport("outcomes and a load problem at once")
    for key in problems:
        fields = _PROBLEM_FIELDS.get(key)
        if fields is None:
            _check(report, key, (str,))
            continue
        if not isinstance(report[key], dict) or set(report[key]) - set(fields):
            raise _BadReport(f"malformed {key}")
        for name, types in fields.items():
            _check(report[key], name, types, required=name in _REQUIRED or name == "error")
    if "missing" in report:
        if not isinstance(report.get("defined", []), list) or not all(isinstance(n, str) for n in report.get("defined", [])):
            raise _BadReport("malformed list of defined functions")
    if problems:
        return report
    if len(tests) != n_tests:
        raise _BadReport(f"{len(tests)} outcomes for {n_tests} tests")
    for outcome, label in zip(tests, _expected_labels(spec, n_tests), strict=True):
        if not isinstance(outcome, dict) or set(outcome) - set(_OUTCOME_FIELDS) or "passed" not in outcome:
            raise _BadReport("a malformed outcome")
        for name, types in _OUTCOME_FIELDS.items():
            _check(outcome, name, types)
        if label is not None and outcome.get("label") != label:
            raise _BadReport(f"an outcome for a test that was not run: {str(outcome.get('label'))[:80]!r}")
    return report


_REQUIRED = {"passed", "label", "msg", "text"}


def _check(record: dict[str, Any], name: str, types: tuple[type, ...], *, required: bool | None = None) -> None:
    if name not in record:
        if name in _REQUIRED if required is None else required:
            raise _BadReport(f"missing field {name!r}")
        return
    value = record[name]
    if not isinstance(value, types) or isinstance(value, bool) and bool not in types:
        raise _BadReport(f"field {name!r} is a {type(value).__name__}")
    if isinstance(value, str) and len(value) > MAX_FIELD:
        raise _BadReport(f"field {name!r} is too long")


def _expected_labels(spec: dict[str, Any], n_tests: int) -> list[str | None]:
    """What each outcome's label must be (None where the harness names it from the failing line)."""
    if spec["kind"] == "assert":
        return [test.strip() for test in spec["tests"]]
    if spec["kind"] == "call":
        return [call_label(spec["entry_point"], *parse_call(t)[:2]) for t in spec["tests"]]
    return [None] * n_tests


def _no_report(result: ExecResult, n_tests: int, total: float, config: VerifierConfig) -> Verdict:
    """The program ended before the harness could report: say why in the agent's terms."""
    tail = result.stderr.strip().splitlines()[-3:]
    if result.timed_out:
        problem, kind = f"your code did not finish within {total:g}s (an infinite loop?)", "timeout"
    elif result.oom:
        problem, kind = f"your code ran out of memory (limit {config.memory_mb} MiB)", "memory"
    elif result.exit_code != 0:
        problem, kind = f"your program crashed (exit code {result.exit_code})", "crash"
        if tail:
            problem += ":\n" + "\n".join(tail)
    else:
        problem, kind = "your program exited before the tests finished (did it call exit()?)", "crash"
    return Verdict(n_tests=n_tests, problem=problem, problem_kind=kind, exec_result=result)


def _normalise_output(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _verify_stdio(sandbox: Sandbox, code: str, payload: dict[str, Any], config: VerifierConfig,
                  files: dict[str, str] | None = None) -> Verdict:
    """Whole programs: one sandboxed run per test, stdout compared line by line (trailing spaces ignored)."""
    program = "\n".join(part for part in (payload.get("preamble", ""), code) if part)
    outcomes: list[TestOutcome] = []
    last = None
    for test in payload["tests"]:
        label = f"input {test['input']!r:.200}"
        if outcomes and outcomes[-1].timed_out:  # one timeout is enough: skip the rest
            outcomes.append(TestOutcome(passed=False, label=label, error="not run after a timeout"))
            continue
        last = sandbox.exec(program, stdin=test["input"], files=files, timeout_s=config.test_timeout_s,
                            memory_mb=config.memory_mb)
        got, expected = _normalise_output(last.stdout), _normalise_output(test["output"])
        error = None
        if last.oom:
            error = f"ran out of memory (limit {config.memory_mb} MiB)"
        elif last.exit_code != 0 and not last.timed_out:
            error = "\n".join(last.stderr.strip().splitlines()[-3:]) or f"exit code {last.exit_code}"
        outcomes.append(TestOutcome(passed=got == expected and last.ok, label=label, expected=repr(expected[:300]),
                                    got=repr(got[:300]), error=error, timed_out=last.timed_out))
    return Verdict(n_tests=len(outcomes), outcomes=tuple(outcomes), exec_result=last)
