"""``selfgym/ToolsMCP-v0``: tasks solved through tools mounted from an MCP server.

The server is ``mcp_demo_server.py`` (a warehouse inventory), started over stdio; the agent gets
the tools the server lists, with the server's own schemas. The state lives in the server process:
the family loads it at setup and reads it back to verify, through tools the agent never sees.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from selfgym.types import Task

from .calls import answer_text, call_text
from .env import ToolEnv
from .family import EpisodeContext, ToolFamily, Verdict, mentions
from .mcp_tools import MCPConnection, MCPServerConfig
from .schema import Tool

__all__ = ["InventoryTasks", "InventoryToolEnv", "demo_server_config"]

DEMO_SERVER_SCRIPT = Path(__file__).with_name("mcp_demo_server.py")


def demo_server_config(name: str = "inventory") -> MCPServerConfig:
    """The bundled inventory server, run with this Python; its ``admin_*`` tools are not mounted."""
    return MCPServerConfig(name=name, command=sys.executable, args=(str(DEMO_SERVER_SCRIPT),), exclude=("admin_*",))


_GOODS = ["bolts", "washers", "hinges", "brackets", "rivets", "springs", "gaskets", "pulleys", "clamps", "valves"]


class InventoryTasks(ToolFamily):
    """Restock the items below their reorder level up to their target level. ``difficulty`` sets
    the number of items (3-5) and of low items (1-3); reorder and target levels are only shown by
    ``get_item``, so each item needs a lookup before the restocks."""

    family = "tools-inventory"
    servers = ("inventory",)

    def generate(self, rng: np.random.Generator, difficulty: float) -> tuple[str, dict[str, Any]]:
        n_items = 3 + int(round(difficulty * 2))
        n_low = 1 + int(round(difficulty * 2))
        names = rng.choice(_GOODS, size=n_items, replace=False)
        skus = [f"SKU-{int(s)}" for s in rng.choice(np.arange(100, 1000), size=n_items, replace=False)]
        low = set(rng.choice(skus, size=n_low, replace=False).tolist())
        items = {}
        for sku, name in zip(skus, names, strict=True):
            reorder = int(rng.integers(5, 21))
            stock = int(rng.integers(0, reorder)) if sku in low else int(rng.integers(reorder, reorder + 30))
            items[sku] = {"name": str(name), "stock": stock, "reorder_level": reorder,
                          "target_level": reorder + int(rng.integers(10, 41))}
        prompt = ("Restock every item whose stock is below its reorder level, so that its stock equals its target "
                  "level exactly. Leave the other items alone. Answer with the number of items you restocked.")
        return prompt, {"items": items, "low": sorted(low), "answer": n_low}

    def open(self, task: Task, ctx: EpisodeContext) -> MCPConnection:
        server = ctx.servers["inventory"]
        server.call("admin_load", {"items": task.payload["items"]})
        return server

    def tools(self, world: MCPConnection) -> Sequence[Tool]:
        return world.tools()

    def verify(self, task: Task, world: MCPConnection, answer: str) -> Verdict:
        state = world.call("admin_state")
        for sku, item in task.payload["items"].items():
            want = item["target_level"] if sku in task.payload["low"] else item["stock"]
            if state[sku]["stock"] != want:
                verb = "should be restocked to its target level" if sku in task.payload["low"] else "should be left alone"
                return Verdict(False, f"{sku} {verb}")
        if not mentions(answer, str(task.payload["answer"])):
            return Verdict(False, "the stock is right but the answer is not the number of items restocked")
        return Verdict(True, "correct")

    def plan(self, task: Task, world: Any) -> list[str]:
        items = task.payload["items"]
        lookups = [call_text("get_item", sku=sku) for sku in sorted(items)]
        restocks = [call_text("restock", sku=sku, quantity=items[sku]["target_level"] - items[sku]["stock"])
                    for sku in task.payload["low"]]
        return [call_text("list_items"), *lookups, *restocks, answer_text(task.payload["answer"])]


class InventoryToolEnv(ToolEnv):
    """Restock a warehouse through the tools of an MCP server (``ToolEnv`` with the server mounted).

    Observation:
        The task, then each tool result as the server returned it, or an error (a tool error the
        server reported, an unknown tool, a schema violation against the server's schema).

    Actions:
        Tool calls and ``<answer>...</answer>``, as in ``ToolEnv``; the tools are the server's
        ``list_items``, ``get_item`` and ``restock``.

    Rewards:
        1 if every low item is at its target level, the others untouched, and the answer gives
        the number restocked; else 0.

    Episode End:
        Terminated by the answer; truncated after ``max_episode_steps`` (20). A server that dies
        mid-episode raises ``ToolServerError`` (the episode is aborted); the next reset restarts it.

    Arguments:
        As ``ToolEnv``; ``families`` and ``mcp_servers`` default to ``InventoryTasks`` and the
        bundled server (``demo_server_config()``).

    Version History:
        v0: initial version.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("families", [InventoryTasks()])
        kwargs.setdefault("mcp_servers", [demo_server_config()])
        super().__init__(**kwargs)
