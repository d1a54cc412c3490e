"""One Chromium process per env, driven by Playwright on an event-loop thread of this module.

The env is synchronous; Playwright runs with its async API on a daemon thread. That gives three
things the sync API cannot: every browser call has a hard deadline (a hung renderer cannot hang the
env), the next episode's fresh context is prepared in the background while the agent thinks, and
the env works inside a running asyncio loop (notebooks, async rollouts). The thread and the
Playwright driver (a node process) are shared by the envs of a Python process and stop with the
last of them; each env has its own Chromium.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from selfgym.errors import InfrastructureError

from .config import BrowserConfig, find_chromium
from .confine import SiteOrigins, block_foreign

__all__ = ["Browser", "BrowserCrashed", "BrowserError", "BrowserHung"]

T = TypeVar("T")


class BrowserError(InfrastructureError):
    """The browser could not be started or used (not the agent's fault)."""


class BrowserCrashed(BrowserError):
    """The browser process, or the episode's page, is gone."""


class BrowserHung(BrowserError):
    """A browser call did not return within its deadline."""


class _Runtime:
    """The process's event-loop thread and Playwright driver, reference-counted by ``Browser``s."""

    _lock = threading.Lock()
    _current: _Runtime | None = None

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(_unless_driver_gone)
        self.thread = threading.Thread(target=self.loop.run_forever, name="selfgym-browser", daemon=True)
        self.thread.start()
        self.playwright: Any = None
        self.users = 0
        self.broken = False

    @classmethod
    def acquire(cls) -> _Runtime:
        with cls._lock:
            if cls._current is None or cls._current.broken:
                cls._current = _Runtime()
            cls._current.users += 1
            return cls._current

    def release(self) -> None:
        with _Runtime._lock:
            self.users -= 1
            if self.users > 0:
                return
            if _Runtime._current is self:
                _Runtime._current = None
        self.stop_driver()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()

    def stop_driver(self) -> None:
        """Stop the Playwright driver (its Chromiums exit with it); a driver already dead is fine."""
        if self.playwright is not None:
            try:
                self.run(_quietly(self.playwright.stop()), timeout=10)
            except BrowserHung:
                pass

    def submit(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def run(self, coro: Awaitable[T], timeout: float) -> T:
        """Wait for ``coro`` on the loop; ``BrowserHung`` (and the coroutine cancelled) after ``timeout``."""
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise BrowserHung(f"the browser did not answer within {timeout:.1f} s") from None

    async def driver(self) -> Any:
        if self.playwright is None:
            from playwright.async_api import async_playwright

            self.playwright = await async_playwright().start()
        return self.playwright


class _Handles:
    """What must be closed at the end; shared with the finalizer, so it also works after garbage collection."""

    def __init__(self) -> None:
        self.runtime: _Runtime | None = None
        self.browser: Any = None


class Browser:
    """A Chromium process with a fresh context per episode, confined to the site's origins.

    Its pages reach ``site_origins`` (the site server's) and ``config.allowed_origins`` and nothing
    else (``confine``: routing on every context, the proxy settings at launch). ``open_page``
    hands out a page in a new context (clean cookies and storage), taking the one
    ``prepare_spare`` made in the background if there is one; ``close_page`` retires a page, whose
    context is closed in the background. ``call`` runs a coroutine function on the loop with the
    hang deadline. ``restart`` replaces a dead or hung browser; ``close`` ends it (also run at
    garbage collection).
    """

    def __init__(self, config: BrowserConfig | None = None, *, site_origins: tuple[str, ...] = ()) -> None:
        self.config = config or BrowserConfig()
        self.site_origins = site_origins
        self.origins = SiteOrigins.of((*site_origins, *self.config.allowed_origins))
        self._handles = _Handles()
        self._finalizer = weakref.finalize(self, _shutdown, self._handles)
        self._spare: concurrent.futures.Future[Any] | None = None
        self._retired: list[Any] = []
        self._crashed: weakref.WeakSet[Any] = weakref.WeakSet()
        self.launches = 0  # Chromium starts, restarts included
        # A page of the site the episodes open: a spare page that has loaded it already has a
        # renderer process for that site and its files in the context's HTTP cache.
        self.warm_url: str | None = None

    # ----------------------------------------------------------------- lifecycle
    @property
    def running(self) -> bool:
        browser = self._handles.browser
        return browser is not None and browser.is_connected()

    def start(self) -> None:
        """Launch Chromium (no-op when it runs); a broken driver is replaced once."""
        if self.running:
            return
        if not self._finalizer.alive:
            raise BrowserError("this Browser was closed; make a new one")
        self._spare, self._retired = None, []
        for attempt in (1, 2):
            if self._handles.runtime is None:
                self._handles.runtime = _Runtime.acquire()
            try:
                self._handles.browser = self._handles.runtime.run(self._launch(), timeout=60)
                break
            except Exception as exc:  # noqa: BLE001 - retried with a fresh driver, then reported
                self._handles.runtime.broken = True
                self._handles.runtime.release()
                self._handles.runtime = None
                if attempt == 2:
                    raise BrowserError(f"could not start the browser: {_first_line(exc)}. {_install_hint()}") from exc
        self.launches += 1

    def restart(self) -> None:
        """Throw the browser away (a hung one included) and launch a new one."""
        self._close_browser()
        self.start()

    def close(self) -> None:
        """Close Chromium (and the shared driver, if this was its last user). Safe to call twice."""
        self._spare, self._retired = None, []
        self._finalizer()

    # ----------------------------------------------------------------- episodes
    def open_page(self) -> Any:
        """A page in a fresh context (Playwright async ``Page``; use it through ``call``)."""
        self.start()
        spare, self._spare = self._spare, None
        page = None
        if spare is not None:
            try:
                page = spare.result(self.config.hang_timeout_s)
            except Exception:  # noqa: BLE001 - a failed spare is replaced by a fresh context below
                page = None
            if page is not None and page.is_closed():
                page = None
        if page is not None:
            return page
        try:
            return self._run(self._new_page())
        except BrowserError:
            raise
        except Exception as exc:  # e.g. the shared driver died under a browser that still looks connected
            raise BrowserCrashed(f"could not open a page: {_first_line(exc)}") from exc

    def prepare_spare(self, *, spare: bool = True) -> None:
        """In the background: make the next episode's context (``config.prewarm`` and ``spare``), close
        retired ones.

        Call it once the current episode's page is ready, so that this work does not compete with
        loading that page for the CPU.
        """
        runtime = self._handles.runtime
        if not self.running or runtime is None:
            return
        if spare and self.config.prewarm and self._spare is None:
            self._spare = runtime.submit(self._new_page())
        retired, self._retired = self._retired, []
        for page in retired:
            runtime.submit(_quietly(page.context.close()))

    @property
    def spare_pending(self) -> bool:
        """Whether the next episode's context is made or being made in the background."""
        return self._spare is not None

    def close_page(self, page: Any) -> None:
        """Retire the page: its context is closed in the background by the next ``prepare_spare``."""
        if page is not None:
            self._retired.append(page)

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, timeout: float | None = None) -> T:
        """Run ``await fn(*args)`` on the browser loop; ``BrowserHung`` after the deadline."""
        if self._handles.runtime is None:
            raise BrowserCrashed("the browser is not running; call reset()")
        return self._handles.runtime.run(fn(*args), timeout or self.config.hang_timeout_s)

    def failure(self, page: Any, probe_timeout: float = 2.0) -> str | None:
        """Why ``page`` cannot be used any more (browser gone, page crashed or hung), or None."""
        if not self.running:
            return "the browser process exited"
        if page is None or page.is_closed():
            return "the page was closed"
        if page in self._crashed:
            return "the page crashed"
        for attempt in (1, 2, 3):
            try:
                self.call(page.evaluate, "1", timeout=probe_timeout)
                return None
            except BrowserHung:
                return f"the page stopped responding (no answer within {probe_timeout:.0f} s)"
            except Exception as exc:  # noqa: BLE001 - any failure of a trivial script means the page is gone
                if attempt < 3 and "context was destroyed" in str(exc):
                    continue  # a navigation (to the error page of a blocked one, say) replaced the document
                return f"the page is unusable ({_first_line(exc)})"
        return None

    # ----------------------------------------------------------------- internals
    def _run(self, coro: Awaitable[T]) -> T:
        assert self._handles.runtime is not None
        return self._handles.runtime.run(coro, self.config.hang_timeout_s)

    async def _launch(self) -> Any:
        playwright = await self._handles.runtime.driver()  # type: ignore[union-attr]
        return await playwright.chromium.launch(
            executable_path=self.config.executable_path or find_chromium(),
            headless=self.config.headless,
            args=self._launch_args(),
            timeout=60_000,
        )

    def _launch_args(self) -> list[str]:
        return self.config.launch_args(site_origins=self.site_origins)

    async def _confine(self, context: Any) -> None:
        await block_foreign(context, self.origins)

    async def _new_page(self) -> Any:
        context = await self._handles.browser.new_context(
            viewport={"width": self.config.viewport_width, "height": self.config.viewport_height},
            service_workers="block",
        )
        context.set_default_timeout(self.config.action_timeout_s * 1000)
        context.set_default_navigation_timeout(self.config.navigation_timeout_s * 1000)
        await self._confine(context)
        page = await context.new_page()
        page.on("crash", self._crashed.add)
        if self.warm_url:
            await page.goto(self.warm_url, wait_until="load")
        return page

    def _close_browser(self) -> None:
        self._spare, self._retired = None, []
        runtime, browser = self._handles.runtime, self._handles.browser
        self._handles.browser = None
        if runtime is not None and browser is not None:
            _close_or_abandon(runtime, browser)


def _close_or_abandon(runtime: _Runtime, browser: Any) -> None:
    """Close Chromium; if it does not answer, stop the driver too (Chromium exits when its pipe closes)."""
    try:
        runtime.run(asyncio.wait_for(browser.close(), timeout=5), timeout=10)
    except Exception:  # noqa: BLE001 - a browser that cannot even close is taken down with its driver
        runtime.broken = True
        runtime.stop_driver()


def _shutdown(handles: _Handles) -> None:
    runtime, handles.runtime = handles.runtime, None
    browser, handles.browser = handles.browser, None
    if runtime is None:
        return
    if threading.current_thread() is runtime.thread:  # collected by a task on the loop: it cannot wait for itself
        threading.Thread(target=_close_and_release, args=(runtime, browser), daemon=True).start()
    else:
        _close_and_release(runtime, browser)


def _close_and_release(runtime: _Runtime, browser: Any) -> None:
    if browser is not None:
        _close_or_abandon(runtime, browser)
    runtime.release()


def _unless_driver_gone(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Report loop errors, except the pending calls a dead driver leaves behind (its env recovers)."""
    if "Connection closed" in str(context.get("exception", "")):
        return
    loop.default_exception_handler(context)


async def _quietly(coro: Awaitable[Any]) -> None:
    try:
        await coro
    except Exception:  # noqa: BLE001 - closing something already dead is fine
        pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _install_hint() -> str:
    if find_chromium() is None:
        return ("No chromium was found on PATH: install it (Debian/Ubuntu: apt-get install chromium) or run "
                "`playwright install chromium`, or pass BrowserConfig(executable_path=...)")
    return "Check that the browser runs: chromium --headless --dump-dom about:blank"
