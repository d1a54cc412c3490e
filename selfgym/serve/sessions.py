"""Sessions of the env server: one env instance and one thread per session.

An env is made, stepped and closed on its session's own thread (never on the event loop): env
steps block (sandboxes, browsers), and some resources are bound to the thread that made them
(Playwright's sync API). A session's failure stays in that session.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gymnasium

__all__ = ["CapacityError", "Session", "SessionPool"]

log = logging.getLogger("selfgym.serve")


class CapacityError(Exception):
    """``max_sessions`` sessions are open already."""

    def __init__(self, active: int, max_sessions: int) -> None:
        super().__init__(f"the server holds its maximum of {max_sessions} sessions; "
                         "retry later, or start it with a larger --max-sessions")
        self.active, self.max_sessions = active, max_sessions


class Session:
    """One client's env, its thread and its bookkeeping."""

    def __init__(self, make_env: Callable[[], gymnasium.Env]) -> None:
        self.id = uuid.uuid4().hex
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"session-{self.id[:8]}")
        self.make_env = make_env
        self.env: gymnasium.Env | None = None
        self.created = self.last_active = time.monotonic()
        self.episode_id: str | None = None
        self.task_id: str | None = None
        self.step_count = 0
        self.closed = False

    async def run(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on the session's thread; ``TimeoutError`` after ``timeout`` s (the
        call itself runs on, and the env is closed after it when the session closes)."""
        future = asyncio.get_running_loop().run_in_executor(self.executor, lambda: fn(*args, **kwargs))
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self.last_active = time.monotonic()

    async def start(self, timeout: float | None) -> None:
        """Make the env on the session's thread."""

        def make() -> None:
            self.env = self.make_env()  # set on the session's thread, so a later close finds it

        await self.run(make, timeout=timeout)

    def close(self) -> asyncio.Future[None] | None:
        """Close the env on its thread after whatever runs there now; the future ends when it is closed."""
        if self.closed:
            return None
        self.closed = True

        def close_env() -> None:  # runs on the session's thread, after the call running there now
            env, self.env = self.env, None
            if env is not None:
                try:
                    env.close()
                except Exception:  # noqa: BLE001 - a failing close must not stop the others
                    log.exception("session %s: env.close() failed", self.id[:8])

        future = asyncio.get_running_loop().run_in_executor(self.executor, close_env)
        self.executor.shutdown(wait=False)
        return future


class SessionPool:
    """The open sessions, at most ``max_sessions`` of them."""

    def __init__(self, make_env: Callable[[], gymnasium.Env], max_sessions: int) -> None:
        self.make_env, self.max_sessions = make_env, max_sessions
        self.sessions: dict[str, Session] = {}
        self.reserved = 0
        self.closing: set[asyncio.Future[None]] = set()  # envs whose close has not finished
        self._lock = threading.Lock()  # counts are also read from other threads (tests, /sessions)

    @property
    def active(self) -> int:
        return len(self.sessions) + self.reserved

    async def open(self, timeout: float | None) -> Session:
        """A new session with its own env.

        Raises:
            CapacityError: ``max_sessions`` sessions are open.
            Exception: whatever making the env raised (the slot is freed).
        """
        with self._lock:
            if self.active >= self.max_sessions:
                raise CapacityError(self.active, self.max_sessions)
            self.reserved += 1
        session = Session(self.make_env)
        try:
            await session.start(timeout)
        except BaseException:
            with self._lock:
                self.reserved -= 1
            session.close()
            raise
        with self._lock:
            self.reserved -= 1
            self.sessions[session.id] = session
        return session

    def release(self, session: Session) -> asyncio.Future[None] | None:
        """Forget ``session`` and close its env (after a call still running on its thread)."""
        with self._lock:
            self.sessions.pop(session.id, None)
        future = session.close()
        if future is not None:
            self.closing.add(future)
            future.add_done_callback(self.closing.discard)
        return future

    async def close_all(self, timeout: float) -> None:
        """Close every session's env, waiting up to ``timeout`` s for envs busy in a step."""
        for session in list(self.sessions.values()):
            self.release(session)
        if self.closing:
            _, pending = await asyncio.wait(set(self.closing), timeout=timeout)
            if pending:
                log.warning("%d env(s) still busy after %.0f s at shutdown; not closed", len(pending), timeout)
