"""Web env latency: reset, action+observation and observation, against raw Playwright and BrowserGym.

All three drive the same page (the bundled shop, same catalog) through the same steps, the oracle's
purchase, interleaved episode by episode so that load on the machine hits them alike:

* ``selfgym``: ``WebEnv.reset`` / ``WebEnv.step`` / ``WebEnv.observe`` (text observation with ids).
* ``raw playwright``: the bare calls those are made of, sync API in this thread: fresh context and
  page, cookie, ``goto``, ``aria_snapshot(mode="ai")``; the action through its ``aria-ref``.
* ``browsergym``: ``browsergym.core.env.BrowserEnv`` (``browsergym-core``, optional) on the same
  page, with its own element ids, ``slow_mo=0`` and ``pre_observation_delay=0`` (its defaults add
  0.5 s to every step); its observation timed as ``_get_obs()`` plus ``flatten_axtree_to_str``.
* ``selfgym unconfined`` (``--unconfined``): the same env with a browser that neither routes its
  contexts nor proxies loopback (``envs/web/confine.py`` off): the cost of confinement, same run.
  Both envs then also time ``goto+obs``, a step that loads the whole shop page (its HTML, scripts
  and styles).

Run: ``python bench/web.py [--episodes 8] [--think-ms 0] [--unconfined]``. ``--think-ms`` waits
between steps as an agent would while it thinks (the env prepares the next episode's context meanwhile).
"""

from __future__ import annotations

import argparse
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import selfgym  # noqa: F401 - registers the envs
from selfgym.envs.web.actions import WebAction, parse_action
from selfgym.envs.web.browser import Browser
from selfgym.envs.web.config import BASE_ARGS, find_chromium
from selfgym.envs.web.env import WebEnv
from selfgym.envs.web.families import family_by_name
from selfgym.envs.web.server import SESSION_COOKIE

TARGETS_MS = {"observation": 30.0, "action+obs": 100.0, "reset": 200.0}


class Timings:
    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}

    def time(self, key: str, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        result = fn(*args)
        self.samples.setdefault(key, []).append((time.perf_counter() - start) * 1000)
        return result

    def p(self, key: str, q: float) -> float:
        """The ``q`` quantile (0.5: median) of the samples of ``key``, in ms."""
        return float(np.quantile(self.samples.get(key, [float("nan")]), q))


def record_script(env: WebEnv, task: Any) -> list[tuple[WebAction, str | None, str, str]]:
    """The oracle's actions for ``task``, with each target's Playwright ref, role and name."""
    env.reset(options={"task": task})
    script = []
    for _ in range(40):
        action = parse_action(env.oracle_action())
        node = env.tree.by_id.get(action.element) if action.element else None
        script.append((action, node.ref if node else None, node.role if node else "", node.name if node else ""))
        _, _, terminated, truncated, _ = env.step(str(action))
        if terminated or truncated:
            return script
    raise RuntimeError("the oracle did not finish the task")


class UnconfinedBrowser(Browser):
    """The env's browser without confinement: no routing, loopback bypasses the dead proxy (a baseline only)."""

    def _launch_args(self) -> list[str]:
        return self.config.launch_args()

    async def _confine(self, context: Any) -> None:
        return None


def run_selfgym(env: WebEnv, task: Any, script: list, t: Timings, think_s: float, reloads: int = 0) -> None:
    t.time("reset", lambda: env.reset(options={"task": task}))
    for action, *_ in script:
        time.sleep(think_s)
        t.time("observation", env.observe)
        t.time("action+obs", env.step, str(action))
    if reloads:
        env.reset(options={"task": task})
    for _ in range(reloads):  # a step that loads a whole page: where routing has the most requests to match
        t.time("goto+obs", env.step, 'goto("/shop/")')


def run_raw(browser: Any, url: str, token: str, script: list, t: Timings, think_s: float) -> None:
    def reset() -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 720})
        page = context.new_page()
        context.add_cookies([{"name": SESSION_COOKIE, "value": token, "url": origin(url)}])
        page.goto(url, wait_until="load")
        page.aria_snapshot(mode="ai")
        return page

    page = t.time("reset", reset)
    for action, ref, *_ in script:
        time.sleep(think_s)
        t.time("observation", lambda: page.aria_snapshot(mode="ai"))
        t.time("action+obs", _raw_step, page, action, ref)
    page.context.close()


def origin(url: str) -> str:
    """``http://host:port`` of ``url``: the session cookie must reach the state API, not only the page."""
    return "/".join(url.split("/", 3)[:3])


def _raw_step(page: Any, action: WebAction, ref: str | None) -> str:
    _raw_action(page, action, ref)
    return page.aria_snapshot(mode="ai")


def _raw_action(page: Any, action: WebAction, ref: str | None) -> None:
    # The env's page navigated once more (its spare context had loaded the site): its refs carry a
    # frame prefix (f1e7) that this page's first document does not have (e7).
    target = page.locator(f"aria-ref={re.sub(r'^f[0-9]+', '', ref)}") if ref else None
    if action.name == "click":
        target.click()
    elif action.name == "fill":
        target.fill(action.text)
    elif action.name == "select":
        target.select_option(label=action.text)
    elif action.name == "press":
        target.press(action.text)


def run_browsergym(env: Any, script: list, t: Timings, think_s: float) -> None:
    from browsergym.utils.obs import flatten_axtree_to_str

    t.time("reset", lambda: env.reset(seed=0))
    inner = env.unwrapped
    for action, _, role, name in script:
        time.sleep(think_s)
        locator = inner.page.get_by_role(role, name=name, exact=True).first
        bid = locator.get_attribute("bid") if role else None  # untimed: the agent reads it from the tree
        t.time("observation", lambda: flatten_axtree_to_str(inner._get_obs()["axtree_object"]))
        t.time("action+obs", env.step, _browsergym_action(action, bid))


def _browsergym_action(action: WebAction, bid: str | None) -> str:
    if action.name == "select":
        return f"select_option({bid!r}, {action.text!r})"
    if action.name in ("fill", "press"):
        return f"{action.name}({bid!r}, {action.text!r})"
    return f"click({bid!r})"


def make_browsergym(playwright: Any, url: str, token: str, chromium: str) -> tuple[Any, str]:
    """A BrowserGym env on our shop page driven by the system Chromium, or None and why not."""
    try:
        import browsergym.core
        from browsergym.core.env import BrowserEnv
        from browsergym.core.task import AbstractBrowserTask
    except ImportError as exc:
        return None, (f"browsergym-core is not installed ({exc.name}); for the comparison: pip install --no-deps "
                      "browsergym-core==0.14.3 beautifulsoup4 (--no-deps: it pins playwright==1.44)")

    class ShopPage(AbstractBrowserTask):
        @classmethod
        def get_task_id(cls) -> str:
            return "selfgym-shop"

        def setup(self, page: Any) -> tuple[str, dict]:
            page.context.add_cookies([{"name": SESSION_COOKIE, "value": token, "url": origin(url)}])
            page.goto(url, wait_until="load")
            return "buy the product", {}

        def validate(self, page: Any, chat_messages: list) -> tuple[float, bool, str, dict]:
            return 0.0, False, "", {}

    # BrowserGym launches browsers through a global Playwright (its chat window too): give it ours,
    # whose launches use the system Chromium, which it cannot be told about otherwise.
    launch = playwright.chromium.launch
    playwright.chromium.launch = lambda **kw: launch(**{"executable_path": chromium, **kw})
    browsergym.core._set_global_playwright(playwright)
    env = BrowserEnv(task_entrypoint=ShopPage, slow_mo=0, pre_observation_delay=0.0, headless=True,
                     pw_chromium_kwargs={"executable_path": chromium})
    version = getattr(browsergym.core, "__version__", "?")
    return env, f"browsergym-core {version} (system Chromium, slow_mo=0, pre_observation_delay=0)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--difficulty", type=float, default=0.0)
    parser.add_argument("--think-ms", type=float, default=0.0)
    parser.add_argument("--no-browsergym", action="store_true")
    parser.add_argument("--no-prewarm", action="store_true", help="no background context for the next reset")
    parser.add_argument("--screenshot", action="store_true", help="selfgym also returns a screenshot each step "
                        "(BrowserGym always does)")
    parser.add_argument("--unconfined", action="store_true", help="also time the env without confinement "
                        "(no routing, loopback not proxied), interleaved with the confined one")
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        print("bench/web: no chromium on PATH (apt-get install chromium); nothing to measure")
        return
    task = family_by_name("shop").make(7, args.difficulty)
    env = WebEnv(family="shop", browser={"prewarm": not args.no_prewarm}, screenshot=args.screenshot)
    unconfined = None
    if args.unconfined:
        unconfined = WebEnv(family="shop", browser=env.browser_config, screenshot=args.screenshot)
        unconfined.browser = UnconfinedBrowser(env.browser_config)
    logging.getLogger("browsergym").setLevel(logging.ERROR)  # it warns about slow_mo=0 at every reset
    script = record_script(env, task)
    server = env.server
    token = server.open_session(task.payload["site"])
    url = server.base_url + "/shop/"

    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    raw_browser = pw.chromium.launch(executable_path=chromium, args=list(BASE_ARGS))
    bg_env, bg_note = None, "skipped (--no-browsergym)"
    if not args.no_browsergym:
        bg_env, bg_note = make_browsergym(pw, url, token, chromium)
    think_s = args.think_ms / 1000
    results = {"selfgym": Timings(), "selfgym unconfined": Timings(), "raw playwright": Timings(),
               "browsergym": Timings()}
    if unconfined is not None:
        record_script(unconfined, task)  # warm-up, as the confined env's recording was
    for _ in range(args.episodes):
        reloads = 5 if unconfined is not None else 0
        run_selfgym(env, task, script, results["selfgym"], think_s, reloads)
        if unconfined is not None:
            run_selfgym(unconfined, task, script, results["selfgym unconfined"], think_s, reloads)
        run_raw(raw_browser, url, token, script, results["raw playwright"], think_s)
        if bg_env is not None:
            run_browsergym(bg_env, script, results["browsergym"], think_s)
    report(results, args, len(script), bg_note)
    env.close()
    if unconfined is not None:
        unconfined.close()
    if bg_env is not None:
        bg_env.close()
    raw_browser.close()
    pw.stop()


def report(results: dict[str, Timings], args: argparse.Namespace, steps: int, bg_note: str) -> None:
    print(f"bench/web: shop task, {args.episodes} episodes x {steps} steps, think {args.think_ms:.0f} ms, "
          f"prewarm {'off' if args.no_prewarm else 'on'}, screenshots {'on' if args.screenshot else 'off'} "
          "(milliseconds, p50 / p95)")
    ours = results["selfgym"]
    for key in ("reset", "action+obs", "observation", "goto+obs"):
        if key not in ours.samples:
            continue
        line = f"  {key:12s} {'selfgym':18s} {ours.p(key, .5):7.1f} / {ours.p(key, .95):7.1f}"
        if key in TARGETS_MS:
            met = ours.p(key, .5) <= TARGETS_MS[key]
            line += f"   target p50 <= {TARGETS_MS[key]:.0f}: {'met' if met else 'MISSED'}"
        for name in ("selfgym unconfined", "raw playwright", "browsergym"):
            other = results[name]
            if key in other.samples:
                ratio = other.p(key, .5) / ours.p(key, .5)
                line += f"\n  {'':12s} {name:18s} {other.p(key, .5):7.1f} / {other.p(key, .95):7.1f}   " \
                        f"{name} / selfgym = {ratio:.2f}x"
        print(line)
    print(f"  browsergym: {bg_note}")


if __name__ == "__main__":
    main()
