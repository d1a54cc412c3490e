"""A small MCP server over stdio: a warehouse inventory (the server behind ``selfgym/ToolsMCP-v0``).

Run it as a script (``python mcp_demo_server.py``); it imports only the ``mcp`` SDK, so it starts
fast. ``SELFGYM_INVENTORY_JSON`` (``{sku: {"name", "stock", ...}}``) sets the initial inventory. Tools whose names start with ``admin_`` load and read the state for the env's task setup
and verifier; the env does not mount them for the agent.
"""

from __future__ import annotations

import json
import os
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

app = MCPServer("selfgym-inventory", log_level="WARNING")
_items: dict[str, dict[str, Any]] = {}


def _item(sku: str) -> dict[str, Any]:
    if sku not in _items:
        raise ToolError(f"no item with sku {sku!r}; list_items shows the skus")
    return _items[sku]


@app.tool()
def list_items() -> list[dict[str, Any]]:
    """List every item in the warehouse with its current stock (sku, name, stock)."""
    return [{"sku": sku, "name": it["name"], "stock": it["stock"]} for sku, it in sorted(_items.items())]


@app.tool()
def get_item(sku: str) -> dict[str, Any]:
    """Details of one item: stock, reorder level (restock when stock is below it) and target level."""
    return {"sku": sku, **_item(sku)}


@app.tool()
def restock(sku: str, quantity: int) -> dict[str, Any]:
    """Add units to an item's stock (1 to 1000 at a time); returns the item."""
    item = _item(sku)
    if not 1 <= quantity <= 1000:
        raise ToolError(f"quantity must be between 1 and 1000, got {quantity}")
    item["stock"] += quantity
    return {"sku": sku, **item}


@app.tool()
def admin_load(items: dict[str, dict[str, Any]]) -> int:
    """Replace the whole inventory (task setup); returns the number of items."""
    _items.clear()
    _items.update({sku: dict(it) for sku, it in items.items()})
    return len(_items)


@app.tool()
def admin_state() -> dict[str, dict[str, Any]]:
    """The whole inventory (for the verifier)."""
    return _items


@app.tool()
def admin_pid() -> int:
    """The server's process id (tests use it to simulate a crash)."""
    return os.getpid()


if __name__ == "__main__":
    # An initial inventory may come from the environment, as servers are often configured.
    _items.update(json.loads(os.environ.get("SELFGYM_INVENTORY_JSON", "{}")))
    app.run()
