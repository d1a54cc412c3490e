"""``selfgym view``: every page over a real loop run shows what the store holds, bad input gets a
clear 4xx page, and the viewer never writes the store nor blocks a writer.

The run is the gym loop on the tiny model (``loop_helpers``' even-length env) with reflections
and the teacher on (a scripted teacher behind the OpenAI-compatible server, as in
``test_loop_memory``); a reflection is stored before the run so the agent's prompts hold memory.
The even-length env cannot import skills (they run in the code env), so the skills are written
through ``SkillLibrary`` afterwards: two versions, usage, a retirement and a snapshot.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from selfgym.store import Store
from selfgym.types import Task, Trajectory, Turn
from selfgym.view import create_app

sys.path.insert(0, str(Path(__file__).parent))
import loop_helpers  # noqa: E402

loop_helpers.register()
RUN = "v"
CONFIG = {
    "name": RUN, "iterations": 2,
    "env": {"id": "selfgym/TestEven-v0", "difficulties": [0.0, 1.0]},
    "agent": {"sampling": {"max_tokens": 6, "temperature": 1.0}},
    "rollout": {"tasks_per_iteration": 3, "group_size": 2},
    "reflections": {"enabled": True, "sampling": {"max_tokens": 8, "temperature": 0.0}},
    "teacher": {"enabled": True, "proposals_per_iteration": 2, "solver_attempts": 1, "max_tokens": 512,
                "reward": "band", "band_lo": 0.0, "band_hi": 1.0},
    "trainer": {"algorithm": "rft", "rft": {"train": {"batch_size": 2, "micro_batch_size": 2}}},
    "eval": {"n_tasks": 4},
}


def _skills(store: Store) -> None:
    from selfgym.skills.library import Skill, SkillLibrary, SkillsConfig

    source = next(t for t in store.trajectories(run_id=RUN) if t.success)
    library = SkillLibrary(store, SkillsConfig(mode="read-write"), run_id=RUN)
    base = Skill(name="even_word", description="a word of even length", code="def even_word():\n    return 'ok'\n",
                 signature="even_word() -> str", tests="assert len(even_word()) % 2 == 0",
                 source_trajectory_id=source.id, source_task_id=source.task_id)
    library.add(base)
    library.add(replace(base, code="def even_word():\n    return 'okay'\n"))
    library.record_usage({"even_word": (4, 3)})
    library.add(replace(base, name="odd_word", description="a word of odd length", code="def odd_word():\n    return 'a'\n"))
    library.retire("odd_word")
    library.snapshot(store.checkpoints(RUN)[-1]["id"])


@functools.cache
def build_run() -> Path:
    """The run directory (built once per test process, shared by the view test modules)."""
    from test_loop_memory import PROPOSAL

    from selfgym.agents.reflection import ReflectionMemory
    from selfgym.agents.server import start_server
    from selfgym.agents.testing import FunctionPolicy
    from selfgym.config import from_dict
    from selfgym.envs.generators.proposal import render_proposal
    from selfgym.models import tiny_model_dir
    from selfgym.run.loop import train
    from selfgym.run.loopconfig import RunConfig

    root = Path(tempfile.mkdtemp(prefix="selfgym-view-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    run_dir = root / "run"
    with Store(run_dir) as store:
        lesson = Task(id="even/lesson", family="even", prompt="Reply with a word of even length (task 1).")
        store.add_tasks([lesson])
        ReflectionMemory(store, run_id=RUN).add(lesson, "Short words such as 'ok' have an even length.")
    config = from_dict(RunConfig, {**CONFIG, "policy": {"model": str(tiny_model_dir()), "device": "cpu"}})
    with start_server(FunctionPolicy(lambda chat: render_proposal(PROPOSAL), name="scripted-teacher")) as server:
        config = replace(config, policy=replace(config.policy, teacher_model=f"openai:{server.url}"))
        train(config, run_dir)
    with Store(run_dir) as store:
        _skills(store)
    return run_dir


@pytest.fixture(scope="module")
def run_dir() -> Path:
    return build_run()


@pytest.fixture(scope="module")
def client(run_dir: Path) -> TestClient:
    return TestClient(create_app([run_dir]))


@pytest.fixture(scope="module")
def store(run_dir: Path):
    with Store(run_dir) as s:
        yield s


def text_of(html: str, element_id: str) -> str:
    match = re.search(rf'id="{re.escape(element_id)}"[^>]*>(.*?)</', html, re.S)
    assert match, f"no element #{element_id}"
    return match.group(1).strip()


def get(client: TestClient, url: str, status: int = 200) -> str:
    r = client.get(url)
    assert r.status_code == status, f"{url}: {r.status_code} {r.text[:500]}"
    assert "Traceback" not in r.text
    return r.text


def test_runs_and_run_pages_show_the_store(client, store):
    page = get(client, "/")
    n = store.count_trajectories(run_id=RUN, include_aborted=True)
    assert f'data-run="{RUN}"' in page and f'class="n-trajectories">{n}<' in page
    page = get(client, f"/s/run/run?run={RUN}")
    assert text_of(page, "run-trajectories") == str(n)
    assert text_of(page, "run-iterations") == "2" and text_of(page, "run-status") == "finished"
    for it, _, value in store.metrics(RUN, "train/success"):
        row = re.search(rf'data-iteration="{it}">(.*?)</tr>', page, re.S)
        assert row and f'class="train-success">{value:.3f}<' in row.group(1)
    for e in store.evals(RUN):
        m = e["metrics"]
        row = re.search(rf'data-iteration="{e["iteration"]}">(.*?)</tr>', page, re.S)
        assert row and f'{m["success_rate"]:.3f} [{m["ci95"][0]:.3f}, {m["ci95"][1]:.3f}]' in row.group(1)
    assert "<svg" in page and "Success rate per iteration" in page and 'id="before-after"' in page
    assert all(f'id="ckpt-{c["id"]}"' in page for c in store.checkpoints(RUN))
    assert json.loads(text_of(page, "config").replace("&#34;", '"')) == store.run(RUN)["config"]
    live = client.get(f"/s/run/run/live?run={RUN}").json()
    assert (live["n_trajectories"], live["iterations_done"], live["status"]) == (n, 2, "finished")
    assert client.get(f"/s/run/run/plot?run={RUN}").headers["content-type"].startswith("image/svg+xml")


def test_trajectory_page_shows_turns_memory_tokens_and_feedback(client, store):
    traj = next(t for t in store.trajectories(run_id=RUN) if t.memory.get("reflection"))
    page = get(client, f"/s/run/trajectory/{traj.id}")
    turn = traj.turns[0]
    assert str(escape(turn.action)) in page and str(escape(turn.observation)) in page
    assert text_of(page, "feedback") == str(escape(traj.info["final_observation"]))
    assert text_of(page, "traj-success") == ("yes" if traj.success else "no")
    reflection = store.memory("reflection")[0]
    assert traj.memory["reflection"][0] == reflection["id"] and str(escape(reflection["text"])) in page
    assert "tokens show as ids" not in page  # the tiny model's folder has a tokenizer.json
    cells = re.findall(r'class="tok"[^>]*title="id (\d+) · logprob (-?[\d.]+)', page)
    assert [int(i) for i, _ in cells] == turn.completion_ids[: len(cells)] and len(cells) == len(turn.completion_ids)
    assert [float(lp) for _, lp in cells] == pytest.approx(turn.logprobs, abs=1e-3)
    raw = get(client, f"/s/run/trajectory/{traj.id}?raw=1")
    assert " ".join(map(str, turn.prompt_ids)) in raw
    other = next(t for t in store.trajectories(task_id=traj.task_id) if t.id != traj.id)
    compare = get(client, f"/s/run/compare?a={traj.id}&b={other.id}")
    assert 'class="diff"' in compare and other.turns[0].action.split()[0] in compare


def test_trajectory_table_filters_sorts_pages_searches_and_downloads(client, store):
    page = get(client, f"/s/run/trajectories?run={RUN}&aborted=any")
    assert text_of(page, "count").startswith(f"{store.count_trajectories(run_id=RUN, include_aborted=True)} ")
    for flag in (True, False):
        page = get(client, f"/s/run/trajectories?run={RUN}&success={int(flag)}")
        ids = set(re.findall(r'<tr data-id="([^"]+)"', page))
        assert ids == {t.id for t in store.trajectories(run_id=RUN, success=flag)}
    page = get(client, f"/s/run/trajectories?run={RUN}&iteration=1&family=even&split=train")
    assert set(re.findall(r'<tr data-id="([^"]+)"', page)) == {t.id for t in store.trajectories(run_id=RUN, iteration=1)
                                                             if store.task(t.task_id).split == "train"}
    seen: list[str] = []
    for n in range(1, 20):
        page = get(client, f"/s/run/trajectories?run={RUN}&per=5&page={n}&sort=reward&order=asc")
        seen += re.findall(r'<tr data-id="([^"]+)"', page)
        if 'id="next"' not in page:
            break
    everything = store.trajectories(run_id=RUN)
    assert sorted(seen) == sorted(t.id for t in everything) and len(seen) == len(set(seen))
    rewards = [next(t.total_reward for t in everything if t.id == i) for i in seen]
    assert rewards == sorted(rewards)
    target = everything[-1]
    needle = target.turns[0].action.strip()[:6]
    page = get(client, f"/s/run/trajectories?run={RUN}&q={needle}")
    found = set(re.findall(r'<tr data-id="([^"]+)"', page))
    assert target.id in found and all(needle in store.trajectory(i).turns[0].action for i in found)
    r = client.get(f"/s/run/trajectories?run={RUN}&success=1&format=jsonl")
    rows = [Trajectory.from_dict(json.loads(line)) for line in r.text.splitlines()]
    assert [t.to_dict() for t in rows] == [t.to_dict() for t in store.trajectories(run_id=RUN, success=True)]


def test_skills_teacher_reflections_and_evals_pages(client, store):
    page = get(client, f"/s/run/skills?run={RUN}")
    assert re.search(r'data-skill="even_word">.*?<td>2</td><td class="skill-status">active</td>'
                     r'<td class="skill-uses">4</td><td>3</td><td>0.750</td>', page, re.S)
    assert re.search(r'data-skill="odd_word">.*?class="skill-status">retired<', page, re.S)
    page = get(client, f"/s/run/skill/even_word?run={RUN}")
    assert "-    return &#39;ok&#39;" in page and "+    return &#39;okay&#39;" in page
    source = store.memory("skill", key="even_word")[0]["source_trajectory_id"]
    assert f'id="skill-source" href="/s/run/trajectory/{source}"' in page
    assert 'class="skill-link" href="/s/run/skill/even_word' in get(client, f"/s/run/trajectory/{source}")

    page = get(client, f"/s/run/teacher?run={RUN}")
    generated = store.tasks(split="generated")
    assert len(generated) == 1, "the scripted teacher's proposal is accepted once"
    task = generated[0]
    counts = {k: v for _, k, v in store.metrics(RUN) if k == "teacher/accepted"}
    assert counts == {"teacher/accepted": 1.0} and task.id.split("/")[0] in page
    lineage = get(client, f"/s/run/task?id={task.id}")
    assert text_of(lineage, "task-split") == "generated" and f'href="/s/run/task?id={task.parent_id.replace("/", "%2F")}"' \
        in lineage
    assert f'class="pass-rate">{task.payload["generator"]["pass_rate"]:.3f}<' in lineage
    for t in store.trajectories(run_id=RUN, task_id=task.parent_id, iteration=0, success=False):
        assert f'href="/s/run/trajectory/{t.id}"' in lineage


def test_teacher_page_shows_each_proposal_with_verdict_reason_and_pass_rate(client, store):
    """Two proposals of one text: the first accepted (its measured pass rate shown, its task linked
    both ways), the second rejected as a duplicate with the judge's reason; filter and download."""
    stored = store.get_state(RUN, "teacher/proposals/1")
    assert [p["status"] for p in stored] == ["accepted", "duplicate"] and stored[1]["reason"]
    task = store.tasks(split="generated")[0]
    assert stored[0]["task_id"] == task.id and stored[0]["pass_rate"] == task.payload["generator"]["pass_rate"]
    page = get(client, f"/s/run/teacher?run={RUN}")
    row = re.search(r'<tr id="proposal-1-1" class="proposal status-duplicate">(.*?)</tr>', page, re.S)
    assert row and f'<td class="reason">{escape(stored[1]["reason"])}</td>' in row.group(1)
    row = re.search(r'<tr id="proposal-1-0" class="proposal status-accepted">(.*?)</tr>', page, re.S)
    assert row and f'class="proposal-pass-rate">{stored[0]["pass_rate"]:.3f}<' in row.group(1)
    assert f'class="accepted-link" href="/s/run/task?id={task.id.replace("/", "%2F")}"' in row.group(1)
    assert f'href="/s/run/task?id={stored[1]["parent_id"].replace("/", "%2F")}"' in page
    filtered = get(client, f"/s/run/teacher?run={RUN}&status=duplicate")
    assert 'id="proposal-1-1"' in filtered and 'id="proposal-1-0"' not in filtered
    lines = client.get(f"/s/run/teacher?run={RUN}&status=duplicate&format=proposals-jsonl").text.splitlines()
    assert [json.loads(line)["reason"] for line in lines] == [stored[1]["reason"]]
    lineage = get(client, f"/s/run/task?id={task.id}")
    assert f'id="proposal-link" href="/s/run/teacher?run={RUN}#proposal-1-0"' in lineage


def test_reflections_and_evals_pages(client, store):
    page = get(client, f"/s/run/reflections?run={RUN}")
    assert all(r["id"] in page for r in store.memory("reflection"))

    evals = store.evals(RUN)
    page = get(client, f"/s/run/evals?run={RUN}")
    a, b = evals[0]["metrics"]["outcomes"], evals[-1]["metrics"]["outcomes"]
    wins = sum(np.mean(b[t]) > np.mean(a[t]) for t in set(a) & set(b))
    losses = sum(np.mean(b[t]) < np.mean(a[t]) for t in set(a) & set(b))
    assert f"<b>{wins}</b> wins, <b>{losses}</b> losses" in page
    r = client.get(f"/s/run/evals?run={RUN}&format=jsonl")
    assert {json.loads(line)["task_id"] for line in r.text.splitlines()} == set(a) & set(b)


def _v1(path: Path) -> Path:
    from test_store_schema import V1_SCHEMA

    path.mkdir()
    db = sqlite3.connect(path / "store.sqlite")
    db.executescript(V1_SCHEMA)
    db.close()
    return path


def test_bad_input_gives_clear_4xx_pages(client, tmp_path):
    for url, status, words in [
        ("/s/run/trajectory/traj-nope", 404, "no trajectory"), ("/s/run/task?id=nope", 404, "no task"),
        (f"/s/run/skill/nope?run={RUN}", 404, "no skill"), ("/s/run/run?run=nope", 404, "no run"),
        ("/s/run/memory/nope", 404, "no memory item"), ("/s/nope/run", 404, "no store named"),
        ("/s/run/trajectories?sort=nope", 400, "sort must be"), ("/s/run/evals?a=x", 400, "ID or STORE:ID"),
        ("/s/run/run?run=v&x=1", 200, None), ("/s/run/trajectories?per=x", 400, "whole numbers"),
        ("/s/run/evals?a=99999&b=1", 404, "no evaluation"), ("/nope", 404, "Not Found"),
    ]:
        page = get(client, url, status)
        assert words is None or words in text_of(page, "error-message")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "store.sqlite").write_bytes(b"this is not a database" * 100)
    (tmp_path / "foreign").mkdir()
    sqlite3.connect(tmp_path / "foreign" / "store.sqlite").execute("CREATE TABLE x (y)").connection.close()
    old = _v1(tmp_path / "old")
    before = (old / "store.sqlite").read_bytes()
    bad = TestClient(create_app([tmp_path / "missing", tmp_path / "corrupt", tmp_path / "foreign", old]))
    assert "does not exist" in text_of(get(bad, "/s/missing", 404), "error-message")
    assert "damaged or not a SQLite database" in text_of(get(bad, "/s/corrupt/run", 422), "error-message")
    assert "not a selfgym store" in text_of(get(bad, "/s/foreign/trajectories", 422), "error-message")
    page = get(bad, "/s/old/run", 409)
    assert "schema v1" in page and "Open the run with selfgym once" in page
    index = get(bad, "/")
    assert index.count('class="error-message"') == 4
    assert (old / "store.sqlite").read_bytes() == before, "the viewer never migrates"


def _links(url: str, html: str) -> list[str]:
    hrefs = [h.replace("&amp;", "&") for h in re.findall(r'href="([/?][^"#]*)"', html) if not h.startswith("/static")]
    return [url.split("?")[0] + h if h.startswith("?") else h for h in hrefs]


def test_click_through_leaves_the_store_unchanged(run_dir, client):
    path = run_dir / "store.sqlite"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    seen, todo = set(), ["/"]
    while todo and len(seen) < 150:
        url = todo.pop(0)
        if url in seen:
            continue
        seen.add(url)
        r = client.get(url)
        assert r.status_code == 200, f"{url}: {r.status_code}"
        if r.headers["content-type"].startswith("text/html"):
            todo += [u for u in _links(url, r.text) if u not in seen]
    kinds = {"/run?", "/trajectories?", "/trajectory/", "/compare?", "/task?", "/skills?", "/skill/",
             "/teacher?", "/evals?", "/reflections?", "/memory/", "format=jsonl"}
    assert {k for k in kinds if any(k in url for url in seen)} == kinds
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_a_writer_is_never_blocked_and_shows_up_live(run_dir, tmp_path):
    copy = tmp_path / "live"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoints"))
    viewer = TestClient(create_app([copy]))
    base = viewer.get(f"/s/live/run/live?run={RUN}").json()["n_trajectories"]
    stop, errors = threading.Event(), []

    def browse() -> None:
        while not stop.is_set():
            for url in (f"/s/live/trajectories?run={RUN}&format=jsonl", f"/s/live/run?run={RUN}",
                        f"/s/live/trajectories?run={RUN}&q=o"):
                if viewer.get(url).status_code != 200:
                    errors.append(url)

    reader = threading.Thread(target=browse)
    reader.start()
    writes = []
    try:
        with Store(copy, busy_timeout_s=0.5) as writer:  # a blocked write would raise "database is locked"
            for i in range(25):
                start = time.perf_counter()
                writer.add_trajectory(Trajectory(task_id="even/lesson", env_id="e", run_id=RUN, iteration=9, attempt=i,
                                                 turns=[Turn(observation="o", action="a" * 50, completion_ids=[1, 2])]))
                writes.append(time.perf_counter() - start)
    finally:
        stop.set()
        reader.join()
    assert not errors and max(writes) < 0.5
    assert viewer.get(f"/s/live/run/live?run={RUN}").json()["n_trajectories"] == base + 25


def test_a_live_lease_holder_shows_as_running(run_dir, tmp_path):
    copy = tmp_path / "held"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoints"))
    code = (f"from selfgym.lease import RunLease\nimport sys, time\nwith RunLease({str(copy)!r}, {RUN!r}):\n"
            "    print('held', flush=True)\n    sys.stdin.readline()\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        viewer = TestClient(create_app([copy]))
        assert viewer.get(f"/s/held/run/live?run={RUN}").json()["status"] == "running"
    finally:
        holder.communicate("\n", timeout=30)
    assert viewer.get(f"/s/held/run/live?run={RUN}").json()["status"] == "finished"


def _report_viewer(run_dir: Path, *args: str) -> str:
    """The ``<p id='viewer'>`` paragraph of the run's report written by ``selfgym report`` ('' if none)."""
    selfgym = str(Path(sys.executable).parent / "selfgym")
    subprocess.run([selfgym, "report", str(run_dir), *args], check=True, capture_output=True, timeout=300)
    match = re.search(r"<p id='viewer'>.*?</p>", (run_dir / "report" / "index.html").read_text(), re.S)
    return match.group(0) if match else ""


def test_cli_serves_the_viewer_on_loopback_and_the_report_links_into_it(run_dir, tmp_path, monkeypatch):
    """``selfgym view`` registers itself while it runs (outside the run dir), ``selfgym report`` then
    links the run's pages in it; a dead viewer's entry gives no links; ``--viewer`` forces a URL."""
    import urllib.request

    from selfgym.view.registry import registry_dir

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    (tmp_path / "xdg").mkdir()
    served = tmp_path / "served"
    shutil.copytree(run_dir, served, ignore=shutil.ignore_patterns("checkpoints", "report"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    selfgym = str(Path(sys.executable).parent / "selfgym")
    proc = subprocess.Popen([selfgym, "view", str(served), "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert f"http://127.0.0.1:{port}/" in proc.stdout.readline()
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/s/served/run?run={RUN}", timeout=5) as r:
                    assert r.status == 200 and b'id="run-status"' in r.read()
                    break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "selfgym view did not answer"
                time.sleep(0.2)
        entry = registry_dir() / f"{proc.pid}.json"
        assert json.loads(entry.read_text())["stores"] == {"served": str((served / "store.sqlite").resolve())}
        links = _report_viewer(served)
        base = f"http://127.0.0.1:{port}"
        assert f"pid {proc.pid}" in links and f"href='{base}'" in links
        for page in ("run", "trajectories", "teacher"):
            assert f"href='{base}/s/served/{page}?run={RUN}'" in links
        assert not list(served.glob("*.json")) and not (served / "viewers").exists()  # nothing in the run dir
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert not entry.exists(), "the viewer's entry is removed on exit"
    entry.write_text(json.dumps({"pid": proc.pid, "url": base, "stores": {"served": str(served / "store.sqlite")}}))
    assert _report_viewer(served) == ""  # a dead pid's entry links nothing
    forced = _report_viewer(served, "--viewer", "http://example.org:9000/")
    assert "given with --viewer" in forced and f"href='http://example.org:9000/s/served/run?run={RUN}'" in forced
    empty = run_dir.parent / "empty"
    empty.mkdir(exist_ok=True)
    out = subprocess.run([selfgym, "view"], capture_output=True, text=True, timeout=60, cwd=empty)
    assert out.returncode == 2 and "pass one: selfgym view RUN_DIR" in out.stderr


def test_mirror_follows_appends_and_a_task_stored_after_its_episode(tmp_path, monkeypatch):
    from selfgym.view import table

    with Store(tmp_path / "m") as writer:
        writer.create_run("r", {}, kind="loop")
        for i in range(7):
            writer.add_trajectory(Trajectory(task_id="late/t", env_id="e", run_id="r", attempt=i, success=i % 2 == 0,
                                             turns=[Turn(observation="o", action=f"answer {i} needle" if i in (1, 5)
                                                         else f"answer {i}")]))
        viewer = TestClient(create_app([tmp_path / "m"]))
        assert 'data-id="' not in get(viewer, "/s/m/trajectories?run=r&family=late")
        writer.add_tasks([Task(id="late/t", family="late", prompt="p")])
        page = get(viewer, "/s/m/trajectories?run=r&family=late&success=1")
        assert text_of(page, "count").startswith("4 trajectories")
        monkeypatch.setattr(table, "SEARCH_WINDOW", 3)  # windows of 3: newest 4..6, then 1..3, then 0
        found, before = [], ""
        for _ in range(3):
            page = get(viewer, f"/s/m/trajectories?run=r&q=needle{before}")
            found += re.findall(r'<tr data-id="[^"]+"', page)
            older = re.search(r'id="older" href="\?([^"]+)"', page)
            before = "&before=" + re.search(r"before=(\d+)", older.group(1)).group(1) if older else ""
        assert len(found) == 2 and not before


def test_evaluations_of_two_stores_compare_task_by_task(run_dir, tmp_path, store):
    twin = tmp_path / "twin"
    shutil.copytree(run_dir, twin, ignore=shutil.ignore_patterns("checkpoints"))
    viewer = TestClient(create_app([run_dir, twin]))
    last = len(store.evals(RUN))  # eval ids are 1..n
    page = get(viewer, f"/s/run/evals?run={RUN}&a=run:1&b=twin:{last}")
    assert f'<option value="twin:{last}" selected>' in page
    a, b = store.evals(RUN)[0]["metrics"]["outcomes"], store.evals(RUN)[-1]["metrics"]["outcomes"]
    n = len(set(a) & set(b))
    assert f"{n} tasks scored by both" in page
    same = get(viewer, f"/s/run/evals?run={RUN}&a=run:{last}&b=twin:{last}")
    assert f"<b>0</b> wins, <b>0</b> losses, {n} ties" in same
    assert "no store named" in text_of(get(viewer, f"/s/run/evals?run={RUN}&a=1&b=nope:1", 404), "error-message")


def test_run_page_shows_transfer_sets_and_evals_compares_them(client, tmp_path):
    """A run with two ``[[eval.transfer]]`` sets (``test_transfer_eval``'s config): the run page's
    Transfer table holds ``transfer_summary``'s figures, and its paired link compares the set's
    first and last evaluation on the ``/evals`` page."""
    from test_transfer_eval import CONFIG as TRANSFER_CONFIG

    from selfgym.config import load_toml
    from selfgym.models import tiny_model_dir
    from selfgym.run.loop import train
    from selfgym.run.loopconfig import RunConfig
    from selfgym.run.report import transfer_summary

    (tmp_path / "run.toml").write_text(TRANSFER_CONFIG.format(name="xfer", model=str(tiny_model_dir())))
    train(load_toml(tmp_path / "run.toml", RunConfig), tmp_path / "xrun")
    with Store(tmp_path / "xrun") as xstore:
        transfer = xstore.evals("xfer", transfer=True)
        summary = {row["name"]: row for row in transfer_summary(transfer)}
    xclient = TestClient(create_app([tmp_path / "xrun"]))
    page = get(xclient, "/s/xrun/run?run=xfer")
    assert 'id="transfer"' in page and set(summary) == {"humaneval", "unseen"}
    for name, row in summary.items():
        for key in ("first", "within"):
            m = row[key]
            cells = re.search(rf'data-transfer="{name}" data-measure="{key}">(.*?)</tr>', page, re.S)
            assert cells, (name, key)
            assert f'class="transfer-before">{m["before"]:.3f} [{m["before_ci95"][0]:.3f}, ' in cells.group(1)
            assert f'class="transfer-after">{m["after"]:.3f} [' in cells.group(1)
            assert f'class="transfer-change">{m["change"]:+.3f} [' in cells.group(1)
    with sqlite3.connect(tmp_path / "xrun" / "store.sqlite") as db:
        a, b = (r[0] for r in db.execute("SELECT id FROM eval_results WHERE split='transfer:humaneval' ORDER BY id"))
    assert f'href="/s/xrun/evals?run=xfer&amp;a={a}&amp;b={b}&amp;measure=first"' in page
    paired = get(xclient, f"/s/xrun/evals?run=xfer&a={a}&b={b}&measure=first")
    n = summary["humaneval"]["first"]["paired_tasks"]
    assert n and f"{n} tasks scored by both" in paired
    assert "<td>transfer:humaneval</td>" in paired  # listed with the held-out evaluations
    assert 'id="transfer"' not in get(client, f"/s/run/run?run={RUN}")  # not a table for a run without sets


def test_ablation_folder_lists_its_variants_with_paired_links(tmp_path):
    """A real ``selfgym ablate`` folder (two variants, no training: cheap) given as one path: each
    variant is a store, and /ablation lists them with held-out before/after, the paired difference
    against ``full`` and links to each run page and to the paired /evals page."""
    from selfgym.config import load_toml
    from selfgym.models import tiny_model_dir
    from selfgym.run.ablate import run_ablation
    from selfgym.run.loopconfig import RunConfig

    (tmp_path / "run.toml").write_text(loop_helpers.config_text("abl", str(tiny_model_dir()), algorithm="none",
                                                                iterations=1))
    config = load_toml(tmp_path / "run.toml", RunConfig)
    config = replace(config, reflections=replace(config.reflections, enabled=True))
    result = run_ablation(config, tmp_path / "abl", without=["reflections"])
    want = {r["variant"]: r for r in result.rows}
    client = TestClient(create_app([tmp_path / "abl"]))
    assert json.loads(client.get("/healthz").text)["stores"] == ["full", "no-reflections"]
    page = get(client, "/ablation")
    assert page.index('data-variant="full"') < page.index('data-variant="no-reflections"')
    for variant, row in want.items():
        cells = re.search(rf'data-variant="{variant}">(.*?)</tr>', page, re.S)
        assert cells, variant
        assert f'class="variant-run" href="/s/{variant}/run?run={row["run_id"]}"' in cells.group(1)
        assert f'class="after">{row["after"]:.3f} [{row["after_ci95"][0]:.3f}, ' in cells.group(1)
        assert f'class="vs-ref">{row["vs_full"]:+.3f} [' in cells.group(1)
        assert f'class="tokens">{row["tokens"]:.0f}<' in cells.group(1)
    link = re.search(r'class="variant-paired" href="([^"]+)"', page)
    assert link and "full%3A" in link.group(1) and "no-reflections%3A" in link.group(1)
    paired = get(client, link.group(1).replace("&amp;", "&"))
    assert f"{want['no-reflections']['paired_tasks']} tasks scored by both" in paired
    assert 'id="nav-ablation"' in get(client, "/")
    assert "No folder of two or more runs" in get(TestClient(create_app([tmp_path / "abl" / "full"])), "/ablation")
