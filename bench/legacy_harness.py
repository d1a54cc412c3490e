"""The single-process test harness selfgym used before the runner/candidate split: a BASELINE for
``bench/sandbox.py`` only (what the split costs per verification). It is NOT safe: the candidate runs
in the same process as the verdict and can patch or forge it (see ``selfgym.envs.code.redteam``).
It reads the tests from ``spec.json`` and the nonce from stdin.
"""

from __future__ import annotations

import _signal  # not ``signal``: its enum wrappers cost milliseconds in every fresh child
import ast
import builtins
import contextlib
import copy
import io
import json
import math
import os
import sys
import traceback

MAX_REPR = 300
SOLUTION = "solution.py"
TESTS = "<tests>"


class TestTimeout(BaseException):
    """Raised by the alarm; a BaseException so that ``except Exception`` in the candidate misses it."""


def _on_alarm(signum, frame):
    raise TestTimeout()


@contextlib.contextmanager
def _time_limit(seconds: float):
    _signal.setitimer(_signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        _signal.setitimer(_signal.ITIMER_REAL, 0)


def _short(value) -> str:
    try:
        text = repr(value)
    except BaseException as exc:  # noqa: BLE001 - a broken __repr__ is the candidate's
        text = f"<unprintable {type(value).__name__}: {type(exc).__name__}>"
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def _error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def _solution_frames(tb) -> str | None:
    """The last frames of the traceback that are in the candidate's code, one line each."""
    lines: list = []
    for f in traceback.extract_tb(tb):
        if f.filename == SOLUTION:
            line = f"line {f.lineno}, in {f.name}: {(f.line or '').strip()}"
            if lines and lines[-1][0] == line:
                lines[-1][1] += 1  # deep recursion: one line, with a count
            else:
                lines.append([line, 1])
    shown = [line if count == 1 else f"{line}  (repeated {count} times)" for line, count in lines[-3:]]
    return "\n".join(shown) or None


def same(got, expected) -> bool:
    """Equal with the same builtin type, recursively; floats (and ints for floats) within 1e-6."""
    if isinstance(expected, float):
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            return False
        if math.isnan(expected):
            return isinstance(got, float) and math.isnan(got)
        return math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9)
    if type(got) is not type(expected):
        return False
    if isinstance(expected, (list, tuple)):
        return len(got) == len(expected) and all(same(got[i], expected[i]) for i in range(len(expected)))
    if isinstance(expected, dict):
        return got.keys() == expected.keys() and all(same(got[k], expected[k]) for k in expected)
    return got == expected


def _explain(node: ast.stmt, scope: dict, local: dict | None = None) -> dict:
    """For ``assert left == right``: the two sides' values, evaluated again."""
    if not (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1
            and isinstance(node.test.ops[0], ast.Eq)):
        return {}
    try:
        left = eval(compile(ast.Expression(node.test.left), TESTS, "eval"), scope, local)
        right = eval(compile(ast.Expression(node.test.comparators[0]), TESTS, "eval"), scope, local)
    except BaseException:  # noqa: BLE001 - the explanation is optional
        return {}
    return {"got": _short(left), "expected": _short(right)}


def run_call(entry, name: str, test: dict, timeout: float) -> dict:
    args = ast.literal_eval(test["args"])
    kwargs = ast.literal_eval(test.get("kwargs") or "{}")
    expected = ast.literal_eval(test["expected"])
    shown = [_short(a) for a in args] + [f"{k}={_short(v)}" for k, v in kwargs.items()]
    outcome = {"label": f"{name}({', '.join(shown)})", "expected": _short(expected)}
    try:
        with _time_limit(timeout):
            got = entry(*copy.deepcopy(args), **copy.deepcopy(kwargs))
    except TestTimeout:
        return {**outcome, "passed": False, "timed_out": True}
    except BaseException as exc:  # noqa: BLE001 - the candidate's error is the test's outcome
        return {**outcome, "passed": False, "error": _error(exc), "traceback": _solution_frames(exc.__traceback__)}
    return {**outcome, "passed": same(got, expected), "got": _short(got)}


def run_assert(scope: dict, statement: str, timeout: float) -> dict:
    outcome = {"label": statement.strip()}
    try:
        tree = ast.parse(statement)
        with _time_limit(timeout):
            exec(compile(tree, TESTS, "exec"), scope)
    except TestTimeout:
        return {**outcome, "passed": False, "timed_out": True}
    except AssertionError:
        return {**outcome, "passed": False, **(_explain(tree.body[0], scope) if tree.body else {})}
    except BaseException as exc:  # noqa: BLE001
        return {**outcome, "passed": False, "error": _error(exc), "traceback": _solution_frames(exc.__traceback__)}
    return {**outcome, "passed": True}


def _statement_at(tree: ast.Module, source: str, lineno: int):
    """The innermost statement spanning ``lineno`` and its text on one line (asserts span lines)."""
    best = None
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and node.lineno <= lineno <= (node.end_lineno or node.lineno):
            if best is None or node.lineno >= best.lineno:
                best = node
    if best is None:
        return None, ""
    text = " ".join((ast.get_source_segment(source, best) or "").split())
    return best, text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def run_check(scope: dict, entry, test_code: str, timeout: float) -> dict:
    try:
        with _time_limit(timeout):
            exec(compile(test_code, TESTS, "exec"), scope)
            scope["check"](entry)
    except TestTimeout:
        return {"label": "check(candidate)", "passed": False, "timed_out": True}
    except BaseException as exc:  # noqa: BLE001
        frames = [(f, n) for f, n in traceback.walk_tb(exc.__traceback__) if f.f_code.co_filename == TESTS]
        if not frames:
            return {"label": "check(candidate)", "passed": False, "error": _error(exc),
                    "traceback": _solution_frames(exc.__traceback__)}
        frame, lineno = frames[-1]
        node, text = _statement_at(ast.parse(test_code), test_code, lineno)
        label = text if isinstance(node, ast.Assert) else f"line {lineno} of the tests: {text}"
        outcome = {"label": label, "passed": False}
        if isinstance(exc, AssertionError):
            return {**outcome, **_explain(node, frame.f_globals, frame.f_locals)}
        return {**outcome, "error": _error(exc), "traceback": _solution_frames(exc.__traceback__)}
    return {"label": "check(candidate)", "passed": True}


def _load(spec: dict, report: dict) -> dict | None:
    """Execute preamble + solution into a fresh namespace; None (and a report entry) on failure."""
    scope = {"__name__": "solution", "__builtins__": builtins}
    with open(SOLUTION, encoding="utf-8") as fh:
        source = fh.read()
    try:
        code = compile(source, SOLUTION, "exec")
    except SyntaxError as exc:
        report["syntax_error"] = {"msg": exc.msg, "line": exc.lineno, "offset": exc.offset,
                                  "text": (exc.text or "").rstrip("\n")}
        return None
    try:
        with _time_limit(spec["load_timeout_s"]):
            for part in (spec.get("preamble"), spec.get("setup_code")):
                if part:
                    exec(compile(part, "<preamble>", "exec"), scope)
            exec(code, scope)
    except TestTimeout:
        report["load_error"] = {"error": "timed out while defining your code", "timed_out": True}
        return None
    except BaseException as exc:  # noqa: BLE001 - including SystemExit from the candidate
        report["load_error"] = {"error": _error(exc), "traceback": _solution_frames(exc.__traceback__)}
        return None
    return scope


def run(spec: dict) -> dict:
    report: dict = {"tests": []}
    scope = _load(spec, report)
    if scope is None:
        return report
    name = spec.get("entry_point")
    entry = scope.get(name) if name else None
    if name and not callable(entry):
        report["missing"] = name
        report["defined"] = sorted(k for k, v in scope.items() if callable(v) and getattr(v, "__module__", "") == "solution")
        return report
    timeout = spec["test_timeout_s"]
    if spec["kind"] == "check":
        report["tests"].append(run_check(scope, entry, spec["test_code"], spec["check_timeout_s"]))
    elif spec["kind"] == "assert":
        report["tests"] = [run_assert(scope, test, timeout) for test in spec["tests"]]
    else:
        report["tests"] = [run_call(entry, name, test, timeout) for test in spec["tests"]]
    return report


def main() -> None:
    _signal.signal(_signal.SIGALRM, _on_alarm)
    nonce = sys.stdin.readline().strip()
    sys.stdin = io.StringIO("")
    with open("spec.json", encoding="utf-8") as fh:
        spec = json.load(fh)
    os.unlink("spec.json")  # the candidate must not read the hidden tests from disk
    real_stdout, captured = sys.stdout, io.StringIO()
    with contextlib.redirect_stdout(captured):
        report = run(spec)
    report["stdout"] = captured.getvalue()[:2000]
    real_stdout.write(f"\n@@result-{nonce}@@" + json.dumps(report) + "\n")
    real_stdout.flush()


if __name__ == "__main__":
    main()
