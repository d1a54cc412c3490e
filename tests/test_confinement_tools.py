"""Tools-v0 from an attacker's side: an agent's tool calls reach its episode's own state and nothing else.

Every attack goes through ``gymnasium.make`` / ``reset`` / ``step`` only, as an agent would send it.
The host's "secrets" are real files (a SQLite store next to the episode, a file beside the
workspace) that the test process can read, so a leak would show up in the observation.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import gymnasium
import pytest

import selfgym  # noqa: F401 - registers the envs
from selfgym.envs.tools import call_text
from selfgym.envs.tools.files import FileTasks
from selfgym.envs.tools.sql import SqlTasks

SECRET = "held-out-outcome-7f3a"


@pytest.fixture(scope="module")
def env() -> Iterator[gymnasium.Env]:
    made = gymnasium.make("selfgym/Tools-v0")
    yield made
    made.close()


@pytest.fixture
def host_store(tmp_path: Path) -> Path:
    """A SQLite file on the host, like a run's ``store.sqlite`` with held-out outcomes."""
    path = tmp_path / "store.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE outcomes (task TEXT, answer TEXT)")
        db.execute("INSERT INTO outcomes VALUES ('heldout/1', ?)", (SECRET,))
    return path


def query(env: gymnasium.Env, sql: str) -> str:
    observation, reward, terminated, truncated, info = env.step(call_text("run_query", sql=sql))
    assert not terminated and not truncated and reward == 0.0
    return observation


def sql_episode(env: gymnasium.Env) -> None:
    env.reset(options={"task": SqlTasks().make(3, 0.0)})


def test_attach_of_a_host_database_is_refused_and_nothing_is_read(env, host_store: Path) -> None:
    sql_episode(env)
    for attach in (f"ATTACH DATABASE '{host_store}' AS o", f"ATTACH 'file:{host_store}?mode=ro' AS o"):
        observation = query(env, attach)
        assert "run_query failed with" in observation and "ATTACH is not allowed" in observation, observation
    observation = query(env, "SELECT answer FROM o.outcomes")
    assert SECRET not in observation and "failed with" in observation, observation


def test_the_database_list_does_not_show_host_paths(env) -> None:
    sql_episode(env)
    workdir = str(env.unwrapped.world.path.parent)
    for sql in ("SELECT * FROM pragma_database_list", "PRAGMA database_list"):
        observation = query(env, sql)
        assert workdir not in observation and "PRAGMA database_list is not allowed" in observation, observation


def test_vacuum_into_cannot_write_a_file_on_the_host(env, tmp_path: Path) -> None:
    sql_episode(env)
    target = tmp_path / "copy.sqlite"
    observation = query(env, f"VACUUM INTO '{target}'")
    assert not target.exists(), f"the agent wrote {target}: {observation}"
    assert "failed with" in observation and "not allowed" in observation, observation


@pytest.mark.parametrize("sql, named", [
    ("SELECT load_extension('/usr/lib/x86_64-linux-gnu/libsqlite3.so.0')", "function load_extension"),
    ("PRAGMA query_only = 0", "PRAGMA query_only"),
    ("PRAGMA temp_store_directory = '/tmp'", "PRAGMA temp_store_directory"),
    ("CREATE TEMP TABLE loot (x)", "changing the schema (CREATE, DROP)"),
    ("BEGIN", "TRANSACTION"),
    ("DELETE FROM orders", "DELETE"),
])
def test_statements_other_than_reads_are_named_in_the_refusal(env, sql: str, named: str) -> None:
    sql_episode(env)
    observation = query(env, sql)
    assert f"{named} is not allowed" in observation, observation


def test_reads_of_the_episode_database_still_work(env) -> None:
    sql_episode(env)
    assert '"n": 3' in query(env, "SELECT COUNT(*) AS n FROM pragma_table_info('products')")
    assert '"name": "price"' in query(env, "PRAGMA table_info(products)")
    observation = query(env, "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 3) "
                             "SELECT SUM(i) AS s FROM r")
    assert '"s": 6' in observation, observation
    assert "customers" in query(env, "SELECT name FROM sqlite_master WHERE type = 'table'")
    assert "orders" in query(env, "SELECT name FROM sqlite_schema")
    observation, *_ = env.step(call_text("insert_row", table="products", values={"name": "pen", "price": 1.5}))
    assert "insert_row returned" in observation, observation


@pytest.fixture
def files_episode(env, tmp_path: Path) -> Path:
    """A files episode, plus a secret file beside its workspace and links out of it."""
    env.reset(options={"task": FileTasks().make(1, 0.5)})
    root = env.unwrapped.world.root
    (root.parent / "secret.txt").write_text(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text(SECRET)
    os.symlink(root.parent / "secret.txt", root / "link.txt")
    os.symlink(tmp_path / "outside", root / "linkdir")
    os.symlink(tmp_path / "outside" / "new.txt", root / "dangling.txt")
    return root


@pytest.mark.parametrize("call", [
    call_text("read_file", path="../secret.txt"),
    call_text("read_file", path="notes/../../secret.txt"),
    call_text("read_file", path="link.txt"),
    call_text("read_file", path="linkdir/secret.txt"),
    call_text("list_dir", path="linkdir"),
    call_text("list_dir", path=".."),
    call_text("write_file", path="dangling.txt", content="planted"),
    call_text("write_file", path="linkdir/planted.txt", content="planted"),
    call_text("delete_file", path="linkdir/secret.txt"),
])
def test_file_tools_stay_inside_the_workspace(env, files_episode: Path, tmp_path: Path, call: str) -> None:
    observation, *_ = env.step(call)
    assert SECRET not in observation and "outside the workspace" in observation, observation
    assert sorted(p.name for p in (tmp_path / "outside").iterdir()) == ["secret.txt"]
    assert (tmp_path / "outside" / "secret.txt").read_text() == SECRET


def test_an_absolute_path_means_the_workspace_root(env, files_episode: Path) -> None:
    observation, *_ = env.step(call_text("read_file", path="/etc/hostname"))
    assert "no file '/etc/hostname'" in observation, observation


@pytest.mark.parametrize("call", [
    call_text("write_file", path="start.txt/x.txt", content="x"),
    call_text("write_file", path="x" * 300 + ".txt", content="x"),
    call_text("list_dir", path="start.txt"),
])
def test_file_errors_do_not_show_host_paths(env, files_episode: Path, call: str) -> None:
    observation, *_ = env.step(call)
    assert "failed with" in observation and str(files_episode.parent) not in observation, observation


def test_an_mcp_agent_gets_only_the_tools_the_env_mounts() -> None:
    made = gymnasium.make("selfgym/ToolsMCP-v0")
    try:
        _, info = made.reset(seed=0)
        assert sorted(t["function"]["name"] for t in info["tools"]) == ["get_item", "list_items", "restock"]
        for name in ("admin_state", "admin_load", "admin_pid"):  # the server has them; the env does not mount them
            observation, *_, info = made.step(call_text(name))
            assert f"unknown tool '{name}'" in (info["action_error"] or ""), observation
    finally:
        made.close()
