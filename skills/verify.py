"""Verification of a candidate skill in the code sandbox, before it may enter the library.

Two checks, both run in the same isolated sandbox as the agent's code:

1. **its own tests**: the function and its ``assert`` lines run as one program and must exit 0;
2. **the originating task's tests**: the code that solved the task must still pass them with the
   skill defined next to it (``skills.py`` importable, the function in the same namespace), and
   when the skill has the task's entry-point name, the skill alone must pass them.
"""

from __future__ import annotations

from typing import Any

from selfgym.types import Task

from .extract import Candidate

__all__ = ["code_sandbox", "verify_candidate"]

TEST_TIMEOUT_S = 5.0


def code_sandbox() -> Any:
    """The code env's shared warm sandbox (bwrap where it works)."""
    from selfgym.envs.code.sandbox import shared_sandbox

    return shared_sandbox()


def verify_candidate(sandbox: Any, candidate: Candidate, *, task: Task | None = None,
                     solution: str | None = None) -> str | None:
    """``None`` when the candidate passes both checks, else the reason it failed."""
    result = sandbox.exec(candidate.code + "\n\n" + candidate.tests + "\n", timeout_s=TEST_TIMEOUT_S)
    if result.timed_out:
        return "its own tests timed out"
    if result.exit_code != 0:
        last = (result.stderr.strip().splitlines() or ["exit code " + str(result.exit_code)])[-1]
        return f"its own tests failed: {last[:200]}"
    if task is None or solution is None or "tests" not in task.payload and "test_code" not in task.payload:
        return None
    from selfgym.envs.code.verifier import verify

    files = {"skills.py": candidate.code}
    verdict = verify(sandbox, candidate.code + "\n\n" + solution, task.payload, files=files)
    if not verdict.passed:
        return f"the originating task's tests fail with the skill beside the solution: {verdict.problem or ''}"
    if candidate.name == task.payload.get("entry_point"):
        verdict = verify(sandbox, candidate.code, task.payload, files=files)
        if not verdict.passed:
            return "the skill has the task's entry-point name but fails the task's tests"
    return None
