"""The skill library: verified, versioned, retrievable functions the agent writes and reuses.

``SkillLibrary`` (kept in the run store, a ``Retriever`` for the agent's prompt), ``SkillCurator``
(usage stats, retirement, LLM extraction verified in the sandbox, merging), ``SkillsWrapper``
(skills importable as module ``skills`` in the code env, skill-integrated reward). SAGE-style
sequential rollouts over a chain of tasks are the runner's: ``selfgym.run.chain.run_chain``.
"""

from __future__ import annotations

from .curator import SkillCurator, final_code, skills_used
from .env import SkillsWrapper, skills_env_factory
from .extract import Candidate, CandidateError, extraction_prompt, parse_candidate
from .library import Skill, SkillLibrary, SkillsConfig
from .verify import verify_candidate

__all__ = [
    "Candidate",
    "CandidateError",
    "Skill",
    "SkillCurator",
    "SkillLibrary",
    "SkillsConfig",
    "SkillsWrapper",
    "extraction_prompt",
    "final_code",
    "parse_candidate",
    "skills_env_factory",
    "skills_used",
    "verify_candidate",
]
