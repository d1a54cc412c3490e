"""Mounting the tools of an MCP server (stdio transport) into a ``ToolEnv``.

``MCPConnection`` starts the server as a subprocess, keeps one ``mcp.ClientSession`` open on a
background event loop, and turns each tool the server lists into a ``Tool`` whose schema is the
server's ``inputSchema``. Calls are synchronous for the env. A tool error reported by the server
is the agent's observation (``MCPToolError``); a dead server raises ``ToolServerError`` (an
``InfrastructureError``: the episode is aborted, and the env restarts the server at its next reset).
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
import tempfile
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from selfgym.errors import ConfigError, InfrastructureError

from .schema import Tool

__all__ = ["MCPConnection", "MCPServerConfig", "MCPToolError", "ToolServerError"]

_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")


class MCPToolError(Exception):
    """The MCP server reported that a tool call failed (shown to the agent)."""


class ToolServerError(InfrastructureError):
    """The MCP server could not be started or stopped answering."""


@dataclass(frozen=True, kw_only=True)
class MCPServerConfig:
    """How to start one MCP server over stdio and which of its tools to mount."""

    name: str = field(metadata={"help": "the server's name in the env (families refer to it)"})
    command: str = field(metadata={"help": "the executable, e.g. sys.executable or 'npx'"})
    args: tuple[str, ...] = field(default=(), metadata={"help": "its command-line arguments"})
    env: dict[str, str] | None = field(default=None, metadata={"help": "extra environment variables"})
    cwd: str | None = field(default=None, metadata={"help": "working directory of the server process"})
    include: tuple[str, ...] = field(default=(), metadata={"help": "glob patterns of tools to mount (empty: all)"})
    exclude: tuple[str, ...] = field(default=(), metadata={"help": "glob patterns of tools not to mount"})
    prefix: str = field(default="", metadata={"help": "prepended to each tool name (avoids clashes)"})
    startup_timeout_s: float = field(default=30.0, metadata={"help": "seconds to wait for initialize"})
    call_timeout_s: float = field(default=10.0, metadata={"help": "seconds one tool call may take"})

    def __post_init__(self) -> None:
        if not self.name or not self.command:
            raise ConfigError("MCPServerConfig needs a name and a command")
        if self.startup_timeout_s <= 0 or self.call_timeout_s <= 0:
            raise ConfigError("MCPServerConfig timeouts must be > 0")

    def mounts(self, tool_name: str) -> bool:
        """Whether the agent gets the server's tool ``tool_name``."""
        included = not self.include or any(fnmatch.fnmatchcase(tool_name, p) for p in self.include)
        return included and not any(fnmatch.fnmatchcase(tool_name, p) for p in self.exclude)


class MCPConnection:
    """A running MCP server and an open client session, used from synchronous code."""

    def __init__(self, config: MCPServerConfig) -> None:
        self.config = config
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: Any = None
        self._stop: asyncio.Event | None = None
        self._main: Future[None] | None = None
        self._listed: list[Any] = []
        self._tools: list[Tool] = []
        self._errlog = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self._broken = False

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> MCPConnection:
        """Start the server, initialize the session and list its tools."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"mcp-{self.config.name}", daemon=True)
        self._thread.start()
        ready: Future[list[Any]] = Future()
        self._stop = asyncio.Event()
        self._main = asyncio.run_coroutine_threadsafe(self._serve(ready), self._loop)
        try:
            self._listed = ready.result(timeout=self.config.startup_timeout_s + 5)
        except BaseException as exc:
            stderr = self._stderr_tail()
            self.close()
            raise ToolServerError(f"MCP server {self.config.name!r} did not start: {_describe(exc)}{stderr}") from exc
        self._tools = [self._to_tool(t) for t in self._listed if self.config.mounts(t.name)]
        return self

    async def _serve(self, ready: Future[list[Any]]) -> None:
        """Hold the session open until ``close`` (contexts must exit in the task that entered them)."""
        from mcp import ClientSession, StdioServerParameters, stdio_client

        assert self._stop is not None
        params = StdioServerParameters(command=self.config.command, args=list(self.config.args),
                                       env=self.config.env, cwd=self.config.cwd)
        try:
            async with stdio_client(params, errlog=self._errlog) as (read, write):
                async with ClientSession(read, write) as session:
                    listed = await asyncio.wait_for(_initialize(session), self.config.startup_timeout_s)
                    self._session = session
                    ready.set_result(listed)
                    await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise
        finally:
            self._session = None

    @property
    def alive(self) -> bool:
        """Started, not closed, and no call has found the server gone."""
        return self._session is not None and not self._broken and self._main is not None and not self._main.done()

    def healthy(self, timeout_s: float = 5.0) -> bool:
        """Alive and answering a ping (a server that died since the last call is found here)."""
        if not self.alive or self._loop is None:
            return False
        future = asyncio.run_coroutine_threadsafe(self._session.send_ping(), self._loop)
        try:
            future.result(timeout=timeout_s)
        except Exception:  # noqa: BLE001 - any failure means the server cannot be used
            future.cancel()
            self._broken = True
            return False
        return True

    def close(self) -> None:
        """Stop the server and the event loop (safe to call twice)."""
        loop, self._loop = self._loop, None
        if loop is None:
            self._errlog.close()
            return
        if self._stop is not None:
            loop.call_soon_threadsafe(self._stop.set)
        if self._main is not None:
            try:
                self._main.result(timeout=10)
            except BaseException:  # noqa: BLE001 - shutting down a server that may be dead already
                self._main.cancel()  # still starting or stuck: cancelling runs the transport's cleanup
                time.sleep(0.5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not loop.is_running():
            loop.close()
        self._errlog.close()

    # ----------------------------------------------------------------- tools
    def tools(self) -> list[Tool]:
        """The mounted tools (their schemas as the server listed them)."""
        return list(self._tools)

    def call(self, name: str, arguments: dict[str, Any] | None = None, *, timeout_s: float | None = None) -> Any:
        """Call the server's tool ``name`` (mounted or not) and return its result.

        Structured results come back as JSON values (``{"result": x}`` unwrapped to ``x``), text
        results as a string. Raises ``MCPToolError`` for a tool error, ``ToolServerError`` if
        the server is gone.
        """
        from mcp import MCPError
        from mcp_types import CONNECTION_CLOSED

        if not self.alive or self._loop is None:
            raise ToolServerError(f"MCP server {self.config.name!r} is not running{self._stderr_tail()}")
        timeout = timeout_s or self.config.call_timeout_s
        coroutine = self._session.call_tool(name, arguments or {}, read_timeout_seconds=timeout)
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            result = future.result(timeout=timeout + 2)
        except FutureTimeout:
            future.cancel()
            raise MCPToolError(f"no answer from the server within {timeout:g} s") from None
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                self._broken = True
                raise ToolServerError(f"MCP server {self.config.name!r} closed the connection"
                                      f"{self._stderr_tail()}") from exc
            raise MCPToolError(exc.message) from None
        return _unwrap(result)

    def _to_tool(self, listed: Any) -> Tool:
        schema = dict(listed.input_schema or {})
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        return Tool(
            name=_INVALID_NAME_CHARS.sub("_", self.config.prefix + listed.name)[:64],
            description=listed.description or listed.title or listed.name,
            parameters=schema,
            fn=self._caller(listed.name),
            timeout_s=self.config.call_timeout_s + 3,  # the server-side timeout fires first
        )

    def _caller(self, name: str) -> Any:
        def invoke(**arguments: Any) -> Any:
            return self.call(name, arguments)

        invoke.__name__ = name
        return invoke

    def _stderr_tail(self, chars: int = 800) -> str:
        try:
            self._errlog.flush()
            self._errlog.seek(0)
            text = self._errlog.read()[-chars:].strip()
        except (OSError, ValueError):
            return ""
        return f"; server stderr: ...{text}" if text else ""


async def _initialize(session: Any) -> list[Any]:
    """Initialize the session and list every tool (following pagination)."""
    await session.initialize()
    listed, cursor = [], None
    while True:
        page = await session.list_tools(params=_page(cursor))
        listed.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return listed


def _page(cursor: str | None) -> Any:
    if cursor is None:
        return None
    from mcp_types import PaginatedRequestParams

    return PaginatedRequestParams(cursor=cursor)


def _unwrap(result: Any) -> Any:
    texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
    if result.is_error:
        message = "\n".join(texts) or "the tool failed"
        raise MCPToolError(message.removeprefix("Error executing tool "))
    structured = result.structured_content
    if structured is not None:
        return structured["result"] if set(structured) == {"result"} else structured
    if texts:
        return "\n".join(texts)
    return [c.model_dump(mode="json", exclude_none=True) for c in result.content]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FutureTimeout | TimeoutError):
        return "no answer to initialize in time"
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"
