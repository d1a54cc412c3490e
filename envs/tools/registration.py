"""Registers the tool-use envs and task sources (imports nothing heavy: it runs on ``import selfgym``)."""

from __future__ import annotations

from selfgym.registry import lazy_factory, register_env, register_task_source

__all__ = ["register"]

_FAMILIES = {
    "tools-calc": ("calculator:CalcTasks", "Arithmetic chains of 1-6 dependent steps, with unit conversion."),
    "tools-sql": ("sql:SqlTasks", "Lookups, joins and inserts on a per-episode SQLite database."),
    "tools-files": ("files:FileTasks", "Follow clue files in a temp dir, write the code found."),
    "tools-calendar": ("agenda:CalendarTasks", "Schedule a meeting at the earliest common free slot."),
    "tools-shop": ("shop:ShopTasks", "Find, check and buy products in an HTTP-free shop API."),
    "tools-inventory": ("inventory:InventoryTasks", "Restock low items through an MCP server's tools."),
}


def register() -> None:
    """Register ``selfgym/Tools-v0``, ``selfgym/ToolsMCP-v0``, ``selfgym/ToolsBFCL-v0`` and task sources."""
    register_env(
        "Tools-v0",
        "selfgym.envs.tools.env:ToolEnv",
        description="Call JSON-schema tools (SQL, files, calendar, shop, calculator) to solve multi-step tasks.",
        max_episode_steps=20,
    )
    register_env(
        "ToolsMCP-v0",
        "selfgym.envs.tools.inventory:InventoryToolEnv",
        description="Tools mounted from a local MCP server (stdio): restock an inventory.",
        max_episode_steps=20,
    )
    register_env(
        "ToolsBFCL-v0",
        "selfgym.envs.tools.bfcl:BFCLEnv",
        description="Berkeley Function Calling Leaderboard-format questions, scored by AST match (held-out).",
        max_episode_steps=1,
    )
    register_task_source("tools", lazy_factory("selfgym.envs.tools.env:default_task_source"),
                         description="All in-process tool families, mixed.")
    for name, (target, description) in _FAMILIES.items():
        register_task_source(name, lazy_factory(f"selfgym.envs.tools.{target}"), description=description)
    register_task_source("bfcl", lazy_factory("selfgym.envs.tools.bfcl:load_bfcl"),
                         description="BFCL-format JSONL (bundled sample, a path, or the bfcl-eval package's data).")
