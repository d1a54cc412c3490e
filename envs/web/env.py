"""``selfgym/Web-v0`` and friends: web tasks in a real Chromium, observed as an accessibility tree."""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium.error import ResetNeeded

from selfgym.errors import ActionError
from selfgym.types import Split, Task

from ..base import LLMEnv, StepResult, to_text
from ..tasks import TaskSource
from . import driver
from .actions import ACTION_HELP, WebAction, parse_action, resolve
from .axtree import AXTree, ElementIds
from .browser import Browser, BrowserCrashed, BrowserError, BrowserHung
from .config import BrowserConfig
from .families import family_by_name, make_task_source
from .families.base import EpisodeStart, Evidence, MixedTasks, OracleView, Verdict, WebTaskFamily
from .server import SESSION_COOKIE, SiteServer

__all__ = ["WebEnv"]

_INSTRUCTIONS = """\
You are using a web browser. Each observation shows your goal, the page URL, the result of your
last action and the page as an accessibility tree: one element per line, e.g. [12] button "Submit".
""" + ACTION_HELP


@dataclass
class _Episode:
    family: WebTaskFamily
    start: EpisodeStart
    page: Any
    token: str
    goal: str = ""
    url: str = ""
    tree: AXTree = field(default_factory=lambda: AXTree([]))
    page_state: Any = None
    png: bytes | None = None
    ids: ElementIds = field(default_factory=ElementIds)
    history: list[str] = field(default_factory=list)
    aborted: str | None = None
    off_site: bool = False  # the page shown is not on the task's origins (a blocked navigation's error page)


class WebEnv(LLMEnv):
    """Web tasks on local sites and MiniWoB++ pages, in headless Chromium driven by Playwright.

    Observation:
        Text: ``Goal:`` (the task), ``URL:`` (a path on the local site server), ``Last action:``
        and ``Error:`` (after a step), then ``Page:``, the accessibility tree with element ids
        (``[12] button "Submit"``, ``[14] textbox "City": Lyon``, ``[15] combobox "Sort by"`` with its
        ``option`` lines). Ids are stable for the episode. With ``screenshot=True`` every
        ``info["screenshot"]`` is the viewport as a ``uint8`` array ``(height, width, 3)``.

    Actions:
        One call per turn: ``click(id)``, ``fill(id, "text")``, ``select(id, "option")``,
        ``press(id, "Enter")`` / ``press("Tab")``, ``scroll(up|down)``, ``goto("/path")`` (the task's
        site or ``allowed_origins`` only) and ``answer("text")``. The browser reaches nothing else:
        a page's request to another origin is blocked (``confine``), and a navigation to one shows
        the browser's error page with a ``Note:`` line. A malformed action, an unknown id or an
        element that cannot be used is an ``Error:`` in the next observation (``info["action_error"]``).

    Rewards:
        1 when the task's check passes, read from the app's recorded state (the order placed, the
        booking saved, the reply posted) or the MiniWoB++ page's own reward; else 0.

    Episode End:
        Terminated when the check decides (the app recorded a final submission, the MiniWoB++ page
        ended its episode) or after ``answer(...)``. Truncated at ``max_episode_steps`` and when the
        browser crashes or hangs: then ``info["aborted"]`` gives the reason, the episode is not to be
        scored, and the next ``reset`` starts a fresh browser.

    Arguments:
        family: task family name(s) for the default task source: ``shop``, ``forms``, ``forum``,
            ``miniwob`` (default: the three bundled sites, mixed).
        browser: a ``BrowserConfig`` (or a dict of its fields): executable, viewport, timeouts,
            prewarming, allowed origins.
        screenshot: add ``info["screenshot"]`` to every reset and step.
        Also ``task_source``, ``split``, ``difficulty``, ``render_mode`` (``ansi``, ``human``,
        ``rgb_array``) as in ``LLMEnv``.

    Version History:
        v0: initial version.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi", "human", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        *,
        family: str | Sequence[str] | None = None,
        task_source: TaskSource | None = None,
        split: Split = "train",
        difficulty: float | None = None,
        render_mode: str | None = None,
        browser: BrowserConfig | dict[str, Any] | None = None,
        screenshot: bool = False,
    ) -> None:
        self._family_names = family
        super().__init__(task_source=task_source, split=split, difficulty=difficulty, render_mode=render_mode)
        self.browser_config = BrowserConfig.coerce(browser)
        self.screenshot = screenshot
        self.browser: Browser | None = None  # launched by the first reset
        self.server: SiteServer | None = None
        self._episode: _Episode | None = None
        self._other_families: dict[str, WebTaskFamily] = {}  # for tasks from outside the task source
        self._restart_needed = False
        # when the last step (or reset) returned, and the time spent in env calls since (for prewarm_idle_s)
        self._answered, self._in_env = 0.0, 0.0

    # ----------------------------------------------------------------- LLMEnv hooks
    def default_task_source(self) -> TaskSource:
        return make_task_source(self._family_names)

    def instructions(self, task: Task) -> str:
        return _INSTRUCTIONS

    def setup(self, task: Task) -> str:
        family = self._family_for(task)
        start = family.start(task)
        for attempt in (1, 2):
            try:
                self._open(family, start, task)
                break
            except BrowserError:
                self.teardown()
                self._restart_needed = True
                if attempt == 2:
                    raise
        return self._observation()

    def parse_action(self, action: str) -> WebAction:
        return parse_action(action)

    def env_response(self, action: WebAction) -> StepResult:
        ep = self._current()
        ref = url = None
        if action.name != "answer":
            assert self.server is not None
            action, ref, url = resolve(action, ep.tree, current_url=ep.page.url, base_url=self.server.base_url,
                                       allowed_origins=self.browser_config.allowed_origins)
        ep.history.append(str(action))
        try:
            snap = self._call(driver.act_and_read(ep.page, action, ref, url=url, scroll_px=self._scroll_px(),
                                                  state_js=ep.start.state_js, screenshot=self.screenshot))
        except driver.ActionFailed as exc:
            reason = self.browser.failure(ep.page) if self.browser else "the browser is not running"
            if reason:
                return self._abort(reason)
            raise ActionError(driver.describe_error(exc.cause, action)) from None
        except Exception as exc:  # noqa: BLE001 - the page could not be read: the episode cannot go on
            return self._abort(self._failure_reason(exc))
        self._apply(snap)
        answer = action.text if action.name == "answer" else None
        verdict = self._validate(answer)
        done = verdict.done or answer is not None
        return StepResult(
            observation=self._observation(action=str(action)),
            reward=verdict.value if done else 0.0,
            terminated=done,
            success=done and verdict.success,
            info={"verdict": verdict.message},
        )

    @property
    def tree(self) -> AXTree:
        """The page as of the latest observation, parsed (``find``, ``by_id``, ``text``)."""
        return self._current().tree

    @property
    def page(self) -> Any:
        """The episode's Playwright (async) ``Page``, for custom checks: ``env.browser.call(env.page.title)``."""
        return self._current().page

    def observe(self) -> str:
        """Read the page again without acting (for pages that change by themselves); the observation."""
        start = time.monotonic()
        ep = self._current()
        if not self._refresh():
            raise BrowserCrashed(f"could not read the page: {ep.aborted}")
        self._in_env += time.monotonic() - start  # the env's own time: not the agent thinking
        return to_text(self._observation())

    def oracle_action(self) -> str:
        ep = self._current()
        assert self.task is not None and self.server is not None
        view = OracleView(tree=ep.tree, url=ep.url, goal=ep.goal, app_state=self.server.state(ep.token),
                          page_state=ep.page_state, history=tuple(ep.history))
        return ep.family.oracle(self.task, view)

    def teardown(self) -> None:
        ep, self._episode = self._episode, None
        if ep is None:
            return
        if self.browser is not None:
            self.browser.close_page(ep.page)
        if self.server is not None:
            self.server.close_session(ep.token)

    # ----------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        observation, info = super().reset(seed=seed, options=options)
        return observation, self._extra_info(info)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._episode is None and not self._done:
            raise ResetNeeded("the last reset() failed; call reset() again")
        thought = time.monotonic() - self._answered - self._in_env  # the agent's time since the last step
        observation, reward, terminated, truncated, info = super().step(action)
        ep = self._episode
        if ep is not None and info["action_error"] is not None and ep.aborted is None:
            if self._refresh():  # the page may have changed (a half-done action): show it with the error
                observation = to_text(self._observation(action=_parsed(action), error=info["action_error"]))
            else:
                observation = to_text(self._abort(ep.aborted or "the page could not be read").observation)
            self.transcript[-1] = ("env", observation)
        if ep is not None and ep.aborted is not None:
            truncated, self._done = True, True
            info["aborted"] = ep.aborted
        if self.browser is not None and thought >= self.browser_config.prewarm_idle_s:
            self.browser.prepare_spare()  # the agent thinks between steps: make the next context meanwhile
        self._answered, self._in_env = time.monotonic(), 0.0
        return observation, reward, terminated, truncated, self._extra_info(info)

    def render(self) -> Any:
        if self.render_mode == "rgb_array":
            ep = self._current()
            return _to_array(self._call(ep.page.screenshot(type="png")))
        return super().render()

    def close(self) -> None:
        super().close()
        if self.browser is not None:
            self.browser.close()
            self.browser = None
        if self.server is not None:
            self.server.close()
            self.server = None

    # ----------------------------------------------------------------- internals
    def _family_for(self, task: Task) -> WebTaskFamily:
        """The family that owns ``task``: the task source itself, one of its families, or one by name."""
        source = self.task_source
        if isinstance(source, WebTaskFamily) and source.family == task.family:
            return source
        family = source.family_of(task) if isinstance(source, MixedTasks) else None
        if family is None:
            family = self._other_families.get(task.family)
        if family is None:
            family = self._other_families[task.family] = family_by_name(task.family)
        return family

    def _open(self, family: WebTaskFamily, start: EpisodeStart, task: Task) -> None:
        """Open the episode's page in a fresh context and read it (``BrowserError`` if the browser fails)."""
        if self.server is None:
            self.server = SiteServer()
        if self.browser is None:
            self.browser = Browser(self.browser_config, site_origins=(self.server.base_url,))
        if self._restart_needed:
            self._restart_needed = False
            self.browser.restart()
        # The next spare context loads this start page (without a session): its renderer and HTTP
        # cache are then ready for the site the next episode most likely opens.
        self.browser.warm_url = self.server.base_url + start.path
        page = self.browser.open_page()
        token = self.server.open_session(start.data)
        ep = self._episode = _Episode(family=family, start=start, page=page, token=token, goal=task.prompt)
        cookie = {"name": SESSION_COOKIE, "value": token, "url": self.server.base_url}
        try:
            self._call(driver.open_episode(page, self.server.base_url + start.path, [cookie], start))
        except BrowserError:
            raise
        except Exception as exc:
            reason = self.browser.failure(page)
            if reason:
                raise BrowserError(f"could not open the episode's page: {reason}") from exc
            self.teardown()
            raise
        if not self._refresh(goal=True):
            raise BrowserError(f"could not read the episode's first page: {ep.aborted}")
        self.browser.prepare_spare(spare=self.browser_config.prewarm_idle_s <= 0)
        self._answered, self._in_env = time.monotonic(), 0.0

    def _refresh(self, *, goal: bool = False) -> bool:
        """Read the page (and the goal, if asked) into the episode; False (episode aborted) on failure."""
        ep = self._current()
        try:
            snap = self._call(driver.snapshot(ep.page, state_js=ep.start.state_js,
                                              goal_js=ep.start.goal_js if goal else None, screenshot=self.screenshot))
        except Exception as exc:  # noqa: BLE001 - whatever broke, the episode cannot go on
            ep.aborted = self._failure_reason(exc)
            return False
        self._apply(snap)
        return True

    def _apply(self, snap: driver.PageSnapshot) -> None:
        ep = self._current()
        ep.tree = AXTree.from_snapshot(snap.aria, ep.ids)
        ep.url = _display_url(snap.url, self.server.base_url if self.server else "")
        ep.off_site = self.browser is not None and not self.browser.origins.allows(snap.url)
        ep.page_state, ep.png = snap.page_state, snap.png
        if snap.goal:
            ep.goal = str(snap.goal)

    def _failure_reason(self, exc: Exception) -> str:
        """Why reading the page failed: the browser's state if it is broken, else the error itself."""
        if isinstance(exc, BrowserHung):
            return f"the browser hung: {exc}"
        ep = self._current()
        reason = self.browser.failure(ep.page) if self.browser is not None else "the browser is not running"
        return reason or f"could not read the page ({str(exc).splitlines()[0] if str(exc) else repr(exc)})"

    def _validate(self, answer: str | None) -> Verdict:
        ep = self._current()
        assert self.task is not None and self.server is not None
        evidence = Evidence(app_state=self.server.state(ep.token), page_state=ep.page_state, answer=answer, url=ep.url)
        return ep.family.validate(self.task, evidence)

    def _abort(self, reason: str) -> StepResult:
        ep = self._current()
        ep.aborted = reason
        self._restart_needed = True  # whatever broke, the next episode gets a fresh browser
        note = f"The episode ends: {reason}. The environment restarts the browser at the next reset()."
        return StepResult(observation=f"Goal: {ep.goal}\n{note}", info={"aborted": reason})

    def _observation(self, *, action: str | None = None, error: str | None = None) -> str:
        ep = self._current()
        lines = [f"Goal: {ep.goal}", f"URL: {ep.url}"]
        if action is not None:
            lines.append(f"Last action: {action}" + ("" if error else " (done)"))
        if error:
            lines.append(f"Error: {error}")
        if ep.off_site:
            lines.append(f"Note: this page is not on the task's site, so the browser did not load it; "
                         f'goto("{ep.start.path}") goes back to the start page')
        lines += ["Page:", ep.tree.text or "(the page is empty)"]
        return "\n".join(lines)

    def _extra_info(self, info: dict[str, Any]) -> dict[str, Any]:
        ep = self._episode
        if ep is not None:
            info["url"] = ep.url
            if self.screenshot and ep.png is not None:
                info["screenshot"] = _to_array(ep.png)
        return info

    def _current(self) -> _Episode:
        if self._episode is None:
            raise ResetNeeded("call reset() first: no episode is open")
        return self._episode

    def _call(self, coro: Any) -> Any:
        if self.browser is None:
            coro.close()
            raise BrowserError("the browser is not running; call reset()")
        return self.browser.call(lambda: coro)

    def _scroll_px(self) -> int:
        return int(self.browser_config.viewport_height * 0.8)


def _display_url(url: str, base: str) -> str:
    """Site URLs as paths (``/shop/#/cart``): stable across runs, whatever port the server has."""
    if base and url.startswith(base):
        return url[len(base):] or "/"
    return url


def _parsed(action: str) -> str | None:
    try:
        return str(parse_action(action))
    except ActionError:
        return None


def _to_array(png: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))
