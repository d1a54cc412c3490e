"""``selfgym view`` in real Chromium: click from the runs page to a trajectory, to the skill extracted
from it, to the teacher's lineage of a generated task; filter the table; the shown values are the
store's. The server is uvicorn on loopback, as ``selfgym view`` runs it."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from selfgym.store import Store
from selfgym.types import Trajectory, Turn

sys.path.insert(0, str(Path(__file__).parent))
from test_view import RUN, build_run  # noqa: E402

pytestmark = pytest.mark.browser
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@contextlib.contextmanager
def serving(run_dirs):
    """The viewer under uvicorn on a free loopback port, in a thread; yields its base URL."""
    import uvicorn

    from selfgym.view import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(run_dirs), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server():
    run_dir = build_run()
    with serving([run_dir]) as url:
        yield url, run_dir


@pytest.fixture(scope="module")
def page(server):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        yield browser.new_page()
        browser.close()


def test_click_from_runs_to_trajectory_skill_and_teacher_lineage(server, page):
    url, run_dir = server
    store = Store(run_dir)
    skill = store.memory("skill", key="even_word")[-1]
    source = store.trajectory(skill["source_trajectory_id"])
    page.goto(url + "/")
    page.click(f'tr[data-run="{RUN}"] a.run-link')
    assert page.inner_text("#run-trajectories") == str(store.count_trajectories(run_id=RUN, include_aborted=True))
    assert page.inner_text("#run-status") == "finished"
    page.click("#nav-trajectories")
    page.click(f'tr[data-id="{source.id}"] a.traj-link')
    assert page.inner_text("#traj-reward") == str(source.total_reward)
    assert page.inner_text("pre.action") == source.turns[0].action
    assert page.locator(".heat .tok").count() == len(source.turns[0].completion_ids)
    page.click("#extracted a.skill-link")
    assert page.inner_text("#skill-name") == "even_word"
    assert page.inner_text("#skill-version") == str(skill["version"])
    assert page.inner_text("#skill-uses") == "4" and page.inner_text("#skill-rate") == "0.750"
    page.click("#nav-teacher")
    generated = store.tasks(split="generated")[0]
    page.click("a.generated-link")
    assert page.inner_text("#task-id") == generated.id
    assert page.inner_text("#task-split") == "generated"
    assert page.inner_text("td.pass-rate") == f"{generated.payload['generator']['pass_rate']:.3f}"
    page.click("a.parent-link")
    assert page.inner_text("#task-id") == generated.parent_id
    assert page.locator("#children a.child-link").inner_text() == generated.id
    store.close()


def test_filter_the_table_in_the_browser(server, page):
    url, run_dir = server
    store = Store(run_dir)
    page.goto(f"{url}/s/run/trajectories?run={RUN}")
    page.select_option("select[name=success]", "0")
    page.select_option("select[name=iteration]", "1")
    page.click("#apply")
    page.wait_for_url("**success=0**")
    shown = set(page.eval_on_selector_all("#trajectories tr[data-id]", "rows => rows.map(r => r.dataset.id)"))
    assert shown == {t.id for t in store.trajectories(run_id=RUN, iteration=1, success=False)}
    assert page.inner_text("#count").startswith(f"{len(shown)} trajectories")
    store.close()


def test_a_running_train_shows_up_live(server, page, tmp_path):
    _, run_dir = server
    copy = tmp_path / "live"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoints"))
    code = (f"from selfgym.lease import RunLease\nimport sys\nwith RunLease({str(copy)!r}, {RUN!r}):\n"
            "    print('held', flush=True)\n    sys.stdin.readline()\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with serving([copy]) as url, Store(copy) as writer:
            page.goto(f"{url}/s/live/run?run={RUN}")
            before = int(page.inner_text("#run-trajectories"))
            assert page.inner_text("#run-status") == "running"
            for i in range(3):
                writer.add_trajectory(Trajectory(task_id="even/lesson", env_id="e", run_id=RUN, iteration=9, attempt=i,
                                                 turns=[Turn(observation="o", action="ok")], success=True))
            page.wait_for_function(f"document.getElementById('run-trajectories').textContent == '{before + 3}'",
                                   timeout=20_000)
            assert int(page.inner_text("#run-successes")) == Store(copy).count_trajectories(run_id=RUN, success=True)
    finally:
        holder.communicate("\n", timeout=30)
