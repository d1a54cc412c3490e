"""selfgym environments (installed as ``selfgym.envs``).

Built-in envs are registered with lazy ``"module:Class"`` entry points, so importing ``selfgym``
costs nothing until an env is made. Each env package (``code/``, ``tools/``, ``web/``,
``generators/``) has a light ``registration.py`` with a ``register()`` function: it may import
nothing heavy (no browser, no model), since it runs on ``import selfgym``.
"""

from __future__ import annotations

import importlib
import importlib.util

from selfgym.registry import lazy_factory, register_env, register_task_source

__all__ = ["ENV_PACKAGES", "register_builtin_envs"]

ENV_PACKAGES = ("code", "tools", "web", "generators")
_registered = False


def register_builtin_envs() -> None:
    """Register the envs and task sources that ship with selfgym (idempotent)."""
    global _registered
    if _registered:
        return
    _registered = True
    register_env(
        "Guess-v0",
        "selfgym.envs.guess:GuessEnv",
        description="Find a hidden integer from higher/lower feedback (multi-turn, procedural).",
        max_episode_steps=12,
    )
    register_task_source("guess", lazy_factory("selfgym.envs.guess:GuessTasks"),
                         description="Hidden integers; difficulty sets the range (8 to 1024).")
    for package in ENV_PACKAGES:
        name = f"{__name__}.{package}.registration"
        if importlib.util.find_spec(f"{__name__}.{package}") and importlib.util.find_spec(name):
            importlib.import_module(name).register()
