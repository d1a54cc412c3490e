"""Tool-use environments (``selfgym/Tools-v0`` and friends).

Tools are Python callables described by JSON Schema (``@tool`` derives it from type hints and the
docstring); task families own the state, the verifier and an oracle; MCP servers can be mounted;
BFCL-format data loads as a held-out set. Names are imported lazily so that registering the envs
(on ``import selfgym``) costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AnswerFamily",
    "BFCLEnv",
    "EpisodeContext",
    "FinalAnswer",
    "MCPConnection",
    "MCPServerConfig",
    "MixedTasks",
    "Tool",
    "ToolCall",
    "ToolEnv",
    "ToolEnvConfig",
    "ToolFamily",
    "Verdict",
    "answer_text",
    "call_text",
    "load_bfcl",
    "parse_tool_action",
    "tool",
]

_WHERE = {
    "Tool": "schema", "tool": "schema",
    "ToolCall": "calls", "FinalAnswer": "calls", "parse_tool_action": "calls", "call_text": "calls",
    "answer_text": "calls",
    "ToolEnv": "env", "ToolEnvConfig": "env",
    "ToolFamily": "family", "AnswerFamily": "family", "EpisodeContext": "family", "MixedTasks": "family",
    "Verdict": "family",
    "MCPConnection": "mcp_tools", "MCPServerConfig": "mcp_tools",
    "BFCLEnv": "bfcl", "load_bfcl": "bfcl",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
