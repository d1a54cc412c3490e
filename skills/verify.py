"""Verification of a candidate skill in the code sandbox, before it may enter the library.

Two checks, both run in the same isolated sandbox as the agent's code:

1. **its own tests**: each top-level statement of its ``assert`` lines is a test of the code
   verifier (evaluated by the harness's runner process, out of the skill's reach: a skill cannot
   pass by exiting early or by patching the checks);
2. **the originating task's tests**: the code that solved the task must still pass them with the
   skill defined next to it (``skills.py`` importable, the function in the same namespace), and
   when the skill has the task's entry-point name, the skill alone must pass them.
"""

from __future__ import annotations

import ast
from typing import Any

from selfgym.types import Task

from .extract import Candidate

__all__ = ["code_sandbox", "verify_candidate"]

TEST_TIMEOUT_S = 5.0


def code_sandbox() -> Any:
    """The code env's shared warm sandbox (bwrap where it works)."""
    from selfgym.envs.code.factory import code_sandbox as sandbox

    return sandbox()


def verify_candidate(sandbox: Any, candidate: Candidate, *, task: Task | None = None,
                     solution: str | None = None) -> str | None:
    """``None`` when the candidate passes both checks, else the reason it failed."""
    from selfgym.envs.code.feedback import format_feedback
    from selfgym.envs.code.verifier import VerifierConfig, verify

    try:
        tree = ast.parse(candidate.tests)
    except SyntaxError as exc:
        return f"its tests do not parse: {exc.msg} (line {exc.lineno})"
    statements = [ast.get_source_segment(candidate.tests, node) or "" for node in tree.body]
    if not statements:
        return "it has no tests"
    own = verify(sandbox, candidate.code, {"entry_point": candidate.name, "tests": statements},
                 VerifierConfig(test_timeout_s=TEST_TIMEOUT_S))
    if not own.passed:
        return f"its own tests failed: {format_feedback(own)[:300]}"
    if task is None or solution is None or "tests" not in task.payload and "test_code" not in task.payload:
        return None
    files = {"skills.py": candidate.code}
    verdict = verify(sandbox, candidate.code + "\n\n" + solution, task.payload, files=files)
    if not verdict.passed:
        return f"the originating task's tests fail with the skill beside the solution: {verdict.problem or ''}"
    if candidate.name == task.payload.get("entry_point"):
        verdict = verify(sandbox, candidate.code, task.payload, files=files)
        if not verdict.passed:
            return "the skill has the task's entry-point name but fails the task's tests"
    return None
