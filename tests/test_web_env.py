"""The web env in a real headless Chromium: tasks done by the oracle, errors, crashes, hangs, cleanup."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import gymnasium
import numpy as np
import psutil
import pytest
from gymnasium.error import ResetNeeded

import selfgym  # noqa: F401 - registers the envs
from selfgym.agents.base import ScriptedAgent
from selfgym.envs.web.config import find_chromium
from selfgym.envs.web.families import family_by_name
from selfgym.envs.web.families.miniwob import ORACLES
from selfgym.run.episode import run_episode

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(find_chromium() is None, reason="no chromium on PATH (apt-get install chromium)"),
]
needs_miniwob = pytest.mark.skipif(importlib.util.find_spec("miniwob") is None,
                                   reason="MiniWoB++ pages come from the miniwob package (pip install miniwob)")


@pytest.fixture(scope="module")
def env() -> Iterator[gymnasium.Env]:
    environment = gymnasium.make("selfgym/Web-v0")
    yield environment
    environment.close()


def chromium_pids(main_only: bool = False) -> set[int]:
    """Live Chromium processes started by this test process (the browser's main process if ``main_only``)."""
    found = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            if "chrom" not in proc.name() or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if main_only and any(arg.startswith("--type=") for arg in proc.cmdline()):
                continue
            found.add(proc.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def play(env: gymnasium.Env, task: object) -> object:
    return run_episode(env, ScriptedAgent(env), task=task)


@pytest.mark.parametrize("difficulty", [0.0, 0.5, 1.0])
def test_scripted_agent_buys_in_the_shop(env: gymnasium.Env, difficulty: float) -> None:
    task = family_by_name("shop").make(4, difficulty)
    traj = play(env, task)
    assert traj.success and traj.total_reward == 1.0 and traj.terminated and not traj.aborted
    assert len(traj.turns) >= 6  # search, open, add, checkout, fill the form, order
    assert "Thank you!" in traj.info["final_observation"]


@pytest.mark.parametrize(("family", "difficulty", "kind"),
                         [("forms", 1.0, "booking"), ("forms", 0.75, "settings"),
                          ("forum", 0.0, "answer"), ("forum", 1.0, "reply")])
def test_scripted_agent_fills_forms_and_uses_the_forum(env: gymnasium.Env, family: str, difficulty: float,
                                                        kind: str) -> None:
    source = family_by_name(family)
    task = next(t for seed in range(40) if (t := source.make(seed, difficulty)).payload["kind"] == kind)
    traj = play(env, task)
    assert traj.success and traj.total_reward == 1.0, traj.info["final_observation"]


@needs_miniwob
def test_scripted_agent_solves_miniwob_tasks_by_their_own_reward(env: gymnasium.Env) -> None:
    source = family_by_name("miniwob")
    failed = []
    for name in ORACLES:
        traj = play(env, source.get(f"miniwob/{name}/s3"))
        if not (traj.success and traj.total_reward == 1.0):
            failed.append((name, traj.info["final_observation"]))
    assert not failed


def test_doing_nothing_scores_zero(env: gymnasium.Env) -> None:
    observation, info = env.reset(options={"task": family_by_name("shop").make(1, 0.0)})
    _, reward, terminated, _, info = env.step('answer("done")')
    assert terminated and reward == 0.0 and not info["success"]
    env.reset(options={"task": family_by_name("forms").make(1, 0.5)})
    for _ in range(5):
        _, reward, terminated, truncated, info = env.step("scroll(down)")
        assert reward == 0.0 and not terminated and not truncated and info["action_error"] is None


def test_bad_actions_become_error_observations_and_lose_nothing(env: gymnasium.Env) -> None:
    task = family_by_name("shop").make(2, 0.0)
    env.reset(options={"task": task})
    bad = {
        "let me think": "no action found",
        "click(999)": "there is no element [999]",
        'goto("https://example.com/")': "not allowed",
        "click(3) click(4)": "found 2 actions",
    }
    for action, message in bad.items():
        observation, reward, terminated, truncated, info = env.step(action)
        assert message in info["action_error"] and f"Error: {info['action_error']}" in observation
        assert "Page:" in observation and 'searchbox "Search products"' in observation
        assert reward == 0.0 and not terminated and not truncated
    button = env.unwrapped.tree.find("button", "Search")
    _, _, _, _, info = env.step(f'fill({button.id}, "lamp")')
    assert "fill" in info["action_error"]  # a button cannot be filled: Playwright's reason, as an observation
    observation, *_ = env.step('goto("/shop/#/cart")')
    assert "URL: /shop/#/cart" in observation and "Your cart is empty." in observation
    observation, _, _, _, info = env.step('select(3, "Express")')
    assert info["action_error"] is not None
    agent = ScriptedAgent(env)  # the episode still completes from here
    for _ in range(25):
        observation, reward, terminated, truncated, info = env.step(agent.act(observation, info).text)
        if terminated or truncated:
            break
    assert terminated and info["success"] and reward == 1.0


def test_same_seed_same_first_observation(env: gymnasium.Env) -> None:
    first, info = env.reset(seed=11)
    again, _ = env.reset(seed=11)
    other, _ = env.reset(seed=12)
    assert first == again and first != other
    assert first.startswith("Goal: ") and "\nURL: /" in first and info["instructions"].count("click(id)") == 1


def test_screenshot_shows_the_page(request: pytest.FixtureRequest) -> None:
    from PIL import Image

    env = gymnasium.make("selfgym/WebShop-v0", screenshot=True, render_mode="rgb_array")
    try:
        _, info = env.reset(seed=5)
        shot = info["screenshot"]
        assert shot.shape == (720, 1280, 3) and shot.dtype == np.uint8
        assert shot.std() > 10  # a rendered page, not a blank frame
        _, _, _, _, info = env.step(ScriptedAgent(env).act("", {}).text)
        assert info["screenshot"].shape == (720, 1280, 3)
        assert env.render().shape == (720, 1280, 3)
        out = Path(request.config.rootpath) / "runs" / "test-artifacts" / "web-shop.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(shot).save(out)
        print(f"what the agent sees: {out}")
    finally:
        env.close()


def test_pages_cannot_reach_the_internet(env: gymnasium.Env) -> None:
    """Even a request the env's own code sends is stopped in the browser: the context routes every
    off-site request away (ERR_BLOCKED_BY_CLIENT), and behind it the dead proxy would refuse it."""
    env.reset(seed=1)
    unwrapped = env.unwrapped
    with pytest.raises(Exception, match="ERR_BLOCKED_BY_CLIENT|ERR_PROXY_CONNECTION_FAILED"):
        unwrapped.browser.call(unwrapped.page.goto, "http://93.184.215.14/")


def test_killed_browser_truncates_the_episode_and_the_next_reset_recovers() -> None:
    env = gymnasium.make("selfgym/WebShop-v0")
    try:
        before = chromium_pids(main_only=True)
        observation, info = env.reset(seed=3)
        mine = chromium_pids(main_only=True) - before
        assert len(mine) == 1
        os.kill(mine.pop(), signal.SIGKILL)
        time.sleep(0.3)
        observation, reward, terminated, truncated, info = env.step(ScriptedAgent(env).act(observation, info).text)
        assert truncated and not terminated and reward == 0.0
        assert "browser" in info["aborted"] and "The episode ends" in observation
        with pytest.raises(ResetNeeded):
            env.step("click(1)")
        traj = run_episode(env, ScriptedAgent(env), seed=3)
        assert traj.success and not traj.aborted
        assert env.unwrapped.browser.launches == 2 and len(chromium_pids(main_only=True) - before) == 1
    finally:
        env.close()


def test_killed_driver_is_replaced_at_the_next_reset() -> None:
    env = gymnasium.make("selfgym/WebForms-v0")
    # another env on the same driver, with no context made ahead: its browser still looks connected
    bystander = gymnasium.make("selfgym/WebShop-v0", browser={"prewarm": False})
    try:
        bystander.reset(seed=1)
        observation, info = env.reset(seed=4)
        drivers = [p for p in psutil.Process().children() if p.name().startswith("node")]
        assert len(drivers) == 1  # one Playwright driver per process, shared by the envs
        drivers[0].kill()
        drivers[0].wait(5)
        *_, truncated, info = env.step(ScriptedAgent(env).act(observation, info).text)
        assert truncated and info["aborted"]
        traj = run_episode(env, ScriptedAgent(env), seed=4)
        assert traj.success and not traj.aborted
        traj = run_episode(bystander, ScriptedAgent(bystander), seed=3)
        assert traj.success and not traj.aborted and bystander.unwrapped.browser.launches == 2
    finally:
        env.close()
        bystander.close()


def test_hung_page_truncates_the_episode_and_the_next_reset_recovers() -> None:
    # the default action timeout, so the recovery episode does not time out on a busy host; the page
    # below never answers again, so a step that returns at all was cut off by the env
    env = gymnasium.make("selfgym/WebForum-v0", browser={"action_timeout_s": 2.0, "hang_timeout_s": 5.0})
    try:
        env.reset(seed=2)
        unwrapped = env.unwrapped
        unwrapped.browser.call(unwrapped.page.evaluate, "setTimeout(() => { for (;;) {} }, 20)")
        time.sleep(0.2)
        start = time.perf_counter()
        _, reward, terminated, truncated, info = env.step("click(2)")
        elapsed = time.perf_counter() - start
        assert truncated and reward == 0.0
        assert "stopped responding" in info["aborted"] or "hung" in info["aborted"], info["aborted"]
        assert elapsed < 60, f"the hung page held the step for {elapsed:.1f} s"
        traj = run_episode(env, ScriptedAgent(env), seed=2)
        assert traj.success
    finally:
        env.close()


def test_the_next_context_is_made_while_the_agent_thinks_not_between_back_to_back_steps() -> None:
    env = gymnasium.make("selfgym/Web-v0", browser={"prewarm_idle_s": 0.2})
    try:
        env.reset(seed=0)
        browser = env.unwrapped.browser
        assert not browser.spare_pending  # nothing competes with reading the episode's page
        for _ in range(25):  # the page read again and again (longer than 0.2 s in all): the env's own time
            env.unwrapped.observe()
        env.step("scroll(down)")
        assert not browser.spare_pending  # sent at once: reset() will make the next context itself
        time.sleep(0.3)  # the model thinks
        env.unwrapped.observe()  # the agent reads the page before acting
        _, _, terminated, truncated, _ = env.step("scroll(up)")
        assert browser.spare_pending and not (terminated or truncated)
        first, _ = env.reset(seed=1)  # takes the context made in the background
        assert "Goal:" in first and not browser.spare_pending
    finally:
        env.close()
    eager = gymnasium.make("selfgym/Web-v0", browser={"prewarm_idle_s": 0})
    try:
        eager.reset(seed=0)
        assert eager.unwrapped.browser.spare_pending  # 0: made as soon as the page is ready
    finally:
        eager.close()


def test_close_leaves_no_browser_processes() -> None:
    before = chromium_pids()
    env = gymnasium.make("selfgym/WebForum-v0")
    env.reset(seed=0)
    started = chromium_pids() - before
    assert started  # the env really runs its own Chromium
    env.close()
    env.close()  # closing twice is fine
    deadline = time.monotonic() + 10
    while chromium_pids() & started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not chromium_pids() & started


@needs_miniwob
def test_env_works_inside_a_running_event_loop(env: gymnasium.Env) -> None:
    async def main() -> tuple[str, float]:
        observation, info = env.reset(options={"task": family_by_name("miniwob").get("miniwob/click-button/s9")})
        _, reward, *_ = env.step(ScriptedAgent(env).act(observation, info).text)
        return observation, reward

    observation, reward = asyncio.run(main())
    assert "button" in observation and reward == 1.0
