"""The code environment: sandboxes with a warm pool, ``CodeEnv`` (``selfgym/Code-v0``), task sets.

``Sandbox`` / ``make_sandbox`` run untrusted code (bwrap, docker, or the unisolated process backend);
``verify`` runs a program against a task's hidden tests; ``extract_code`` finds the program in a
model's reply; ``code_tasks``, ``humaneval_tasks``, ``mbpp_tasks`` and ``jsonl_tasks`` load tasks.

Names are imported on first use, so that ``registration`` (run on ``import selfgym``) stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CodeEnv": "env", "CodeEnvConfig": "env",
    "FAMILIES": "families", "code_tasks": "families",
    "humaneval_tasks": "datasets", "jsonl_tasks": "datasets", "mbpp_tasks": "datasets",
    "extract_code": "extract", "parse_tool_call": "extract",
    "format_feedback": "feedback",
    "Sandbox": "sandbox", "SandboxConfig": "sandbox", "available_backends": "factory", "make_sandbox": "factory",
    "register_backend": "factory", "shared_sandbox": "factory", "code_sandbox": "factory",
    "TestOutcome": "verifier", "Verdict": "verifier", "VerifierConfig": "verifier", "verify": "verifier",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
