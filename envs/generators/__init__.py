"""Task generators: task proposal as an environment (``selfgym/ProposeTask-v0``).

``parse_proposal`` reads a Code-as-Task proposal, ``validate_proposal`` runs it in the sandbox,
``proposal_task`` turns it into a ``generated`` task that ``Code-v0`` plays unchanged;
``ProposalJudge`` scores proposals (validity x learnability x novelty) for both ``ProposeTaskEnv`` and
the teacher agent (``selfgym.agents.teacher.Teacher``), with the solver's pass rates injected.

Names are imported on first use, so that ``registration`` (run on ``import selfgym``) stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ProposeTaskConfig": "env", "ProposeTaskEnv": "env", "code_sandbox": "env", "default_heldout": "env",
    "Judgement": "judge", "PassRates": "judge", "ProposalJudge": "judge",
    "ContextSource": "context", "oracle_proposal": "context", "render_context": "context",
    "summarise_failure": "context",
    "PROPOSAL_FORMAT": "proposal", "Proposal": "proposal", "ProposalError": "proposal", "ProposalLimits": "proposal",
    "Validation": "proposal", "parse_proposal": "proposal", "proposal_task": "proposal",
    "render_proposal": "proposal", "task_payload": "proposal", "validate_proposal": "proposal",
    "band": "reward", "learnability": "reward", "learnability_factor": "reward",
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
