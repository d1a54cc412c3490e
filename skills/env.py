"""Skills inside the code env: the library importable as module ``skills``, and the skill reward.

``SkillsWrapper`` wraps a ``selfgym/Code-v0`` env. At each reset it writes the library's active
skills into ``skills.py`` next to the agent's code (``from skills import name`` works in the
sandbox); after each step it records which library skills the submitted code imported or copied
(``info["skills_used"]``, kept on the stored turn) and, when the episode succeeds using one, adds
``reward_bonus`` to the reward (``info["skill_bonus"]``): SAGE's skill-integrated reward. Trainers
that score episodes by total reward (``trainer.grpo.reward = "total_reward"``, the default) see
it; success stays the env's verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import gymnasium

from .curator import skills_used
from .library import SkillLibrary

__all__ = ["SkillsWrapper", "skills_env_factory"]


class SkillsWrapper(gymnasium.Wrapper):
    """See the module docstring. ``env`` must be a code env (it has ``extra_files``)."""

    def __init__(self, env: gymnasium.Env, library: SkillLibrary, *, reward_bonus: float | None = None) -> None:
        super().__init__(env)
        if not hasattr(env.unwrapped, "extra_files"):
            raise TypeError(f"{env.unwrapped.__class__.__name__} cannot import skills (no extra_files); "
                            "skills run in the code env")
        self.library = library
        self.reward_bonus = library.config.reward_bonus if reward_bonus is None else reward_bonus
        self._library: dict[str, str] = {}  # name -> code of the skills importable this episode

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        self._library = {s.name: s.code for s in self.library.skills()}
        cast(Any, self.env.unwrapped).extra_files = {"skills.py": self.library.module_source()}
        return self.env.reset(seed=seed, options=options)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        obs, raw_reward, terminated, truncated, info = self.env.step(action)
        reward = float(raw_reward)
        used = skills_used(getattr(self.env.unwrapped, "last_code", None), self._library)
        if used:
            record: dict[str, Any] = {"skills_used": used}
            if info.get("success") and self.reward_bonus:
                reward += self.reward_bonus
                record["skill_bonus"] = self.reward_bonus
            info = {**info, **record, "turn_info": {**(info.get("turn_info") or {}), **record}}
        return obs, reward, terminated, truncated, info


def skills_env_factory(make_env: Callable[[], gymnasium.Env], library: SkillLibrary) -> Callable[[], gymnasium.Env]:
    """A factory of code envs wired to ``library`` (for ``run_rollouts``)."""
    return lambda: SkillsWrapper(make_env(), library)
