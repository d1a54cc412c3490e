"""Store schema versions: a v1 store opens (migrated, duplicates reported and kept), a newer one is
refused with both versions, a damaged or foreign file is a one-line error naming it."""

import io
import json
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from rich.console import Console

from selfgym.agents.models import tiny_model_dir
from selfgym.config import load_toml, to_dict
from selfgym.errors import DuplicateAttemptError, DuplicateRecordError, StoreError
from selfgym.run.loop import train
from selfgym.run.loopconfig import RunConfig
from selfgym.store import SCHEMA_VERSION, Store
from selfgym.types import Trajectory

sys.path.insert(0, str(Path(__file__).parent))
import loop_helpers  # noqa: E402

loop_helpers.register()
SELFGYM = str(Path(sys.executable).parent / "selfgym")

# the tables as selfgym wrote them before schema v2 (no runs.kind, no slot columns, no unique keys)
V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (id TEXT PRIMARY KEY, created_at REAL NOT NULL, config TEXT NOT NULL, info TEXT NOT NULL);
CREATE TABLE tasks (
    id TEXT PRIMARY KEY, family TEXT NOT NULL, split TEXT NOT NULL, difficulty REAL NOT NULL,
    source TEXT NOT NULL, parent_id TEXT, prompt TEXT NOT NULL, payload TEXT NOT NULL,
    run_id TEXT, created_at REAL NOT NULL);
CREATE TABLE trajectories (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL, task_id TEXT NOT NULL, env_id TEXT NOT NULL,
    policy_id TEXT NOT NULL, iteration INTEGER NOT NULL, attempt INTEGER NOT NULL,
    success INTEGER NOT NULL, total_reward REAL NOT NULL, aborted TEXT, n_turns INTEGER NOT NULL,
    created_at REAL NOT NULL, record TEXT NOT NULL);
CREATE INDEX trajectories_run ON trajectories (run_id, iteration);
CREATE INDEX trajectories_task ON trajectories (task_id);
CREATE TABLE turns (
    trajectory_id TEXT NOT NULL REFERENCES trajectories (id), idx INTEGER NOT NULL,
    observation TEXT NOT NULL, action TEXT NOT NULL, reward REAL NOT NULL,
    prompt_ids BLOB NOT NULL, completion_ids BLOB NOT NULL, logprobs BLOB,
    parse_error TEXT, info TEXT NOT NULL, PRIMARY KEY (trajectory_id, idx));
CREATE TABLE memory (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL,
    run_id TEXT, content TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE checkpoints (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL, iteration INTEGER NOT NULL, path TEXT NOT NULL,
    parent_id TEXT, info TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE eval_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, checkpoint_id TEXT,
    env_id TEXT NOT NULL, split TEXT NOT NULL, iteration INTEGER, metrics TEXT NOT NULL,
    created_at REAL NOT NULL);
CREATE TABLE metrics (
    run_id TEXT NOT NULL, iteration INTEGER NOT NULL, key TEXT NOT NULL, value REAL NOT NULL,
    created_at REAL NOT NULL);
CREATE TABLE state (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, key));
INSERT INTO meta VALUES ('schema_version', '1');
"""


def _v1_store(path: Path, loop_config: dict) -> Path:
    """A v1 store as two racing v1 writers left it: loop run 'old' with two attempts and one
    evaluation stored twice, and a non-loop run whose repeated keys are not duplicates."""
    path.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path / "store.sqlite")
    db.executescript(V1_SCHEMA)
    now = time.time()
    db.execute("INSERT INTO runs VALUES ('old', ?, ?, '{}')", (now, json.dumps(loop_config)))
    db.execute("INSERT INTO runs VALUES ('cli-run', ?, '{\"env_id\": \"e\"}', '{}')", (now,))
    rows = [("old", it, task, attempt, f"{w}-{it}-{task}-{attempt}") for w in "a" for it in (0,)
            for task in ("t0", "t1") for attempt in (0, 1)]
    rows += [("old", 0, "t0", 0, "b-0-t0-0"), ("old", 0, "t1", 1, "b-0-t1-1")]  # the second writer's copies
    rows += [("cli-run", 0, "t0", 0, f"cli-{i}") for i in range(2)]
    for run_id, it, task, attempt, tid in rows:
        record = Trajectory(id=tid, task_id=task, env_id="e", run_id=run_id, iteration=it, attempt=attempt).to_dict()
        record.pop("turns")
        db.execute("INSERT INTO trajectories VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   (tid, run_id, task, "e", "p", it, attempt, 0, 0.0, None, 0, now, json.dumps(record)))
    for run_id, it in (("old", 0), ("old", 0), ("old", 1), ("cli-run", None), ("cli-run", None)):
        db.execute("INSERT INTO eval_results (run_id, env_id, split, iteration, metrics, created_at) "
                   "VALUES (?, 'e', 'heldout', ?, '{\"success_rate\": 0.5}', ?)", (run_id, it, now))
    db.commit()
    db.close()
    return path


def test_v1_store_migrates_reports_duplicates_and_keeps_them(tmp_path):
    run_dir = _v1_store(tmp_path / "run", {"trainer": {"algorithm": "rft"}})
    with pytest.warns(UserWarning, match="v1 migrated to v2; 2 duplicated loop attempts .* and 1 duplicated "
                                         "evaluations .* in run\\(s\\) old"):
        store = Store(run_dir)
    assert store.schema_version() == SCHEMA_VERSION == 2
    assert store.count_trajectories(run_id="old") == 6 and len(store.evals("old")) == 3  # nothing deleted
    assert store.trajectory("b-0-t0-0").attempt == 0
    found = store.duplicates()
    assert [(a[:4], a[4]) for a in found.attempts] == [(("old", 0, "t0", 0), ["a-0-t0-0", "b-0-t0-0"]),
                                                       (("old", 0, "t1", 1), ["a-0-t1-1", "b-0-t1-1"])]
    assert found.evals == [("old", 0, "heldout", 2)]
    assert store.run("old")["kind"] == "loop" and store.run("cli-run")["kind"] is None
    # from now on the store refuses what the v1 writers could store twice
    with pytest.raises(DuplicateAttemptError, match="iteration 0, task 't1', attempt 0 already .*'a-0-t1-0'"):
        store.add_trajectory(Trajectory(id="c-0-t1-0", task_id="t1", env_id="e", run_id="old", attempt=0))
    with pytest.raises(DuplicateRecordError, match="heldout evaluation of iteration 1 already"):
        store.add_eval(run_id="old", env_id="e", split="heldout", metrics={}, iteration=1)
    store.add_trajectory(Trajectory(id="c-1-t0-0", task_id="t0", env_id="e", run_id="old", iteration=1))
    store.add_eval(run_id="old", env_id="e", split="heldout", metrics={}, iteration=2)
    store.add_trajectory(Trajectory(id="cli-2", task_id="t0", env_id="e", run_id="cli-run"))  # not a loop run
    store.add_eval(run_id="cli-run", env_id="e", split="heldout", metrics={})  # no iteration: no key
    store.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # migrated once; opening again is quiet
        assert Store(run_dir).schema_version() == 2


def test_resume_of_a_migrated_run_reports_its_duplicates(tmp_path):
    (tmp_path / "run.toml").write_text(loop_helpers.config_text("old", str(tiny_model_dir()), "none", 1))
    config = load_toml(tmp_path / "run.toml", RunConfig)
    run_dir = _v1_store(tmp_path / "run", json.loads(json.dumps(to_dict(config))))
    db = sqlite3.connect(run_dir / "store.sqlite")
    db.execute("INSERT INTO state VALUES ('old', 'iteration', '1', 0)")  # the run had finished
    db.commit()
    db.close()
    out = io.StringIO()
    with pytest.warns(UserWarning, match="2 duplicated loop attempts"):
        train(config, run_dir, resume=True, console=Console(file=out, width=400))
    assert "warning: " in out.getvalue() and "2 duplicated loop attempts" in out.getvalue()
    assert Store(run_dir).count_trajectories(run_id="old") == 6


def test_newer_schema_is_refused_with_both_versions(tmp_path):
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "store.sqlite")
    db.execute("UPDATE meta SET value='7' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match=r"store\.sqlite was written with store schema v7; this selfgym reads "
                                         r"schema v1 to v2: upgrade selfgym"):
        Store(tmp_path)
    out = subprocess.run([SELFGYM, "export", str(tmp_path), "--out", str(tmp_path / "x.jsonl")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "schema v7" in out.stderr


def test_foreign_sqlite_file_is_refused_and_left_untouched(tmp_path):
    db = sqlite3.connect(tmp_path / "store.sqlite")
    db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)")
    db.commit()
    db.close()
    before = (tmp_path / "store.sqlite").read_bytes()
    with pytest.raises(StoreError, match=r"store\.sqlite is a SQLite database but not a selfgym store \(tables: photos\)"):
        Store(tmp_path)
    assert (tmp_path / "store.sqlite").read_bytes() == before  # not switched to WAL, no tables added


@pytest.mark.parametrize("command", [["report", "{d}"], ["export", "{d}", "--out", "x.jsonl"], ["skills", "list", "{d}"]])
def test_damaged_store_is_a_one_line_error_naming_the_file(tmp_path, command):
    (tmp_path / "store.sqlite").write_bytes(b"not a database " * 100)
    out = subprocess.run([SELFGYM, *(a.format(d=tmp_path) for a in command)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 2, out.stderr
    assert out.stderr == f"error: {tmp_path / 'store.sqlite'} is damaged or not a SQLite database (file is not a " \
                         "database); move it away or pass another run directory\n"
