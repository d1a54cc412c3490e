"""Registers ``selfgym/ProposeTask-v0`` (light: imports nothing from this package)."""

from __future__ import annotations

from selfgym.registry import lazy_factory, register_env, register_task_source

__all__ = ["register"]


def register() -> None:
    """Called on ``import selfgym`` (see ``selfgym.envs.register_builtin_envs``)."""
    register_env(
        "ProposeTask-v0",
        "selfgym.envs.generators.env:ProposeTaskEnv",
        description="Propose a new code task (tests, reference, failing examples) from a failure; "
                    "reward = validity x learnability x novelty.",
        max_episode_steps=3,
    )
    register_task_source("propose-code", lazy_factory("selfgym.envs.generators.context:ContextSource"),
                         description="Contexts for ProposeTask-v0: a failed code task and examples of its family.")
