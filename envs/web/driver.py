"""What the env does to a page, as coroutines run on the browser loop (``Browser.call``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .actions import WebAction
from .families.base import EpisodeStart

__all__ = [
    "ActionFailed",
    "PageSnapshot",
    "act_and_read",
    "describe_error",
    "open_episode",
    "perform",
    "snapshot",
]


class ActionFailed(Exception):
    """The action itself failed in the page (``cause``); whether that is the agent's fault is decided later."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass(frozen=True)
class PageSnapshot:
    """One look at the page: URL, ARIA snapshot (YAML), the family's page state, screenshot."""

    url: str
    aria: str
    page_state: Any = None
    goal: str | None = None
    png: bytes | None = None


async def open_episode(page: Any, url: str, cookies: list[dict[str, str]], start: EpisodeStart) -> None:
    """Set the session cookie, load the start page and run the family's setup scripts."""
    if cookies:
        await page.context.add_cookies(cookies)
    await page.goto(url, wait_until="load")
    if start.setup_js:
        await page.evaluate(start.setup_js)
    if start.ready_js:
        await page.wait_for_function(start.ready_js)


async def snapshot(page: Any, *, state_js: str | None, goal_js: str | None = None,
                   screenshot: bool = False) -> PageSnapshot:
    """Read the page after an action; waits for a navigation the action started to finish loading."""
    for attempt in range(3):
        try:
            await page.wait_for_load_state("load")
            aria = await page.aria_snapshot(mode="ai")
            state = await page.evaluate(state_js) if state_js else None
            goal = await page.evaluate(goal_js) if goal_js else None
            break
        except Exception as exc:  # a navigation replaced the document mid-read: read the new one
            if attempt == 2 or "context was destroyed" not in str(exc):
                raise
    png = await page.screenshot(type="png") if screenshot else None
    return PageSnapshot(url=page.url, aria=aria, page_state=state, goal=goal, png=png)


async def perform(page: Any, action: WebAction, ref: str | None, *, url: str | None, scroll_px: int) -> None:
    """Do ``action`` (element already resolved to its Playwright ``ref``; ``url`` already allowed)."""
    target: Any = page.locator(f"aria-ref={ref}") if ref is not None else None
    if action.name == "click":
        await target.click()
    elif action.name == "fill":
        await target.fill(action.text or "")
    elif action.name == "select":
        await target.select_option(label=action.text)
    elif action.name == "press":
        if target is not None:
            await target.press(action.text)
        else:
            await page.keyboard.press(action.text)
    elif action.name == "scroll":
        delta = scroll_px if action.text == "down" else -scroll_px
        await page.evaluate("dy => window.scrollBy(0, dy)", delta)
    elif action.name == "goto":
        await page.goto(url, wait_until="load")
    else:  # answer: nothing to do on the page
        return


async def act_and_read(page: Any, action: WebAction, ref: str | None, *, url: str | None, scroll_px: int,
                       state_js: str | None, screenshot: bool) -> PageSnapshot:
    """``perform`` then ``snapshot``, in one trip to the browser loop; ``ActionFailed`` if the action failed."""
    try:
        await perform(page, action, ref, url=url, scroll_px=scroll_px)
    except Exception as exc:
        raise ActionFailed(exc) from exc
    return await snapshot(page, state_js=state_js, screenshot=screenshot)


def describe_error(exc: Exception, action: WebAction) -> str:
    """A Playwright error as one line the agent can act on."""
    text = str(exc)
    first = text.splitlines()[0] if text else type(exc).__name__
    if first.startswith(("Locator.", "Page.", "Keyboard.")) and ": " in first:
        first = first.split(": ", 1)[1]
    if type(exc).__name__ == "TimeoutError":
        log = [line.strip(" -") for line in text.splitlines() if "intercepts pointer events" in line
               or "not visible" in line or "not enabled" in line or "not editable" in line]
        why = f" ({log[-1]})" if log else " (it is hidden, disabled, read-only or covered)"
        return f"{action} did not work: the element could not be used in time{why}"
    return f"{action} failed: {first}"
