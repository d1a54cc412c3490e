"""Running tool calls: lookup, argument validation, dispatch with a timeout, result text.

Tools run on one worker thread per env, so a call that hangs can be abandoned. On timeout the
worker gets a ``ToolTimeout`` raised inside it (this stops runaway Python code); a call blocked in
C code cannot be interrupted, so its worker is left to finish on its own and a fresh one takes
over. A tool that raises is reported to the agent (exception type and message); an
``InfrastructureError`` from a tool (a dead MCP server) propagates and aborts the episode.
"""

from __future__ import annotations

import ctypes
import difflib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any

from selfgym.errors import ActionError, InfrastructureError

from .calls import ToolCall
from .schema import Tool

__all__ = ["CallOutcome", "ToolRunner", "ToolTimeout", "Toolbox", "format_value"]


class ToolTimeout(BaseException):  # noqa: N818 - raised inside the tool; BaseException so `except Exception` in a tool cannot swallow it
    """Raised inside a tool that ran past its deadline."""


class _Worker(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="selfgym-tool-worker", daemon=True)
        self.inbox: queue.SimpleQueue[tuple[Callable[..., Any], dict[str, Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )

    def run(self) -> None:
        while True:
            item = self.inbox.get()
            if item is None:
                return
            fn, arguments, future = item
            try:
                if future.set_running_or_notify_cancel():
                    future.set_result(fn(**arguments))
            except BaseException as exc:  # noqa: BLE001 - every outcome goes back to the caller
                if not future.done():
                    future.set_exception(exc)


def _raise_in_thread(thread_id: int, exc_type: type[BaseException] | None) -> None:
    """Schedule ``exc_type`` in the thread (``None`` cancels a pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type is not None else None
    )


class ToolRunner:
    """Calls tool functions with a deadline, on a worker thread (or inline when no timeout is set)."""

    def __init__(self, *, grace_s: float = 0.25) -> None:
        self.grace_s = grace_s
        self._worker: _Worker | None = None
        self.abandoned = 0  # workers left behind by calls blocked past their deadline

    def run(self, fn: Callable[..., Any], arguments: dict[str, Any], timeout_s: float | None) -> Any:
        """``fn(**arguments)``; raises ``ToolTimeout`` past ``timeout_s``, else whatever ``fn`` raises."""
        if timeout_s is None:
            return fn(**arguments)
        worker = self._ensure_worker()
        future: Future[Any] = Future()
        worker.inbox.put((fn, arguments, future))
        if not wait([future], timeout=timeout_s).done:
            assert worker.ident is not None
            _raise_in_thread(worker.ident, ToolTimeout)
            wait([future], timeout=self.grace_s)
            _raise_in_thread(worker.ident, None)
            if not future.done():
                worker.inbox.put(None)  # it exits once the blocked call returns
                self._worker = None
                self.abandoned += 1
                raise ToolTimeout(f"no result after {timeout_s:g} s (the call was abandoned)")
        try:
            return future.result()
        except ToolTimeout:
            raise ToolTimeout(f"no result after {timeout_s:g} s (the call was stopped)") from None

    def _ensure_worker(self) -> _Worker:
        if self._worker is None or not self._worker.is_alive():
            self._worker = _Worker()
            self._worker.start()
        return self._worker

    def close(self) -> None:
        if self._worker is not None:
            self._worker.inbox.put(None)
            self._worker = None


@dataclass(frozen=True)
class CallOutcome:
    """The result of one call as the agent sees it (``error`` is None when the call succeeded)."""

    call: ToolCall
    text: str
    error: str | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def format_value(value: Any, max_chars: int) -> str:
    """Text for a tool's return value: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    if len(text) > max_chars:
        text = f"{text[:max_chars]}... [{len(text) - max_chars} more characters cut]"
    return text


class Toolbox:
    """The tools of one episode, by name: validates calls and runs them."""

    def __init__(
        self,
        tools: Iterable[Tool],
        *,
        runner: ToolRunner,
        default_timeout_s: float | None = 5.0,
        max_result_chars: int = 4000,
    ) -> None:
        self.tools: dict[str, Tool] = {}
        for t in tools:
            if t.name in self.tools:
                raise ValueError(f"two tools are named {t.name!r}; tool names must be unique in an episode")
            self.tools[t.name] = t
        self.runner = runner
        self.default_timeout_s = default_timeout_s
        self.max_result_chars = max_result_chars

    def specs(self) -> list[dict[str, Any]]:
        """The tools in the OpenAI function-calling format."""
        return [t.spec() for t in self.tools.values()]

    def resolve(self, call: ToolCall) -> Tool:
        """The tool for ``call``, its arguments checked; ``ActionError`` saying what is wrong."""
        found = self.tools.get(call.name)
        if found is None:
            close = difflib.get_close_matches(call.name, list(self.tools), n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ActionError(f"unknown tool {call.name!r}.{hint} Available tools: {', '.join(self.tools) or 'none'}")
        found.check_arguments(call.arguments)
        return found

    def run(self, call: ToolCall) -> CallOutcome:
        """Run a resolved call; a tool's exception or timeout becomes an error outcome."""
        found = self.tools[call.name]
        timeout = found.timeout_s if found.timeout_s is not None else self.default_timeout_s
        start = time.perf_counter()
        try:
            value = self.runner.run(found.fn, call.arguments, timeout)
        except InfrastructureError:
            raise
        except ToolTimeout as exc:
            return CallOutcome(call, f"timed out: {exc}", "ToolTimeout", time.perf_counter() - start)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the agent sees what its call did
            message = format_value(str(exc) or "(no message)", self.max_result_chars)
            return CallOutcome(call, f"{type(exc).__name__}: {message}", type(exc).__name__,
                               time.perf_counter() - start)
        return CallOutcome(call, format_value(value, self.max_result_chars), None, time.perf_counter() - start)
