"""The store's schema: tables, its version, the checks on open and the migrations of older files.

Schema versions (``meta.schema_version``):

- v1: the first layout.
- v2: ``runs.kind`` (``'loop'`` for gym-loop runs); ``trajectories.slot`` and ``eval_results.slot``
  with two unique indexes: one trajectory per (run, iteration, task, attempt) of a loop run, one
  evaluation per (run, iteration, split). ``slot`` is 1 on the row that holds its key and NULL on
  rows the key does not cover (other runs' trajectories, evaluations without an iteration) and on
  duplicates kept from a v1 store: a migration reports duplicates, it never deletes them.

A store of a newer version is refused with both versions named; a file that is not a SQLite
database, or a SQLite database without selfgym's ``meta`` table, is refused with a one-line
``StoreError`` before anything is written to it.
"""

from __future__ import annotations

import json
import sqlite3
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from selfgym.errors import StoreError

__all__ = ["SCHEMA_VERSION", "Duplicates", "find_duplicates", "open_schema"]

SCHEMA_VERSION = 2

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, created_at REAL NOT NULL, config TEXT NOT NULL, info TEXT NOT NULL, kind TEXT);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, family TEXT NOT NULL, split TEXT NOT NULL, difficulty REAL NOT NULL,
    source TEXT NOT NULL, parent_id TEXT, prompt TEXT NOT NULL, payload TEXT NOT NULL,
    run_id TEXT, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS trajectories (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL, task_id TEXT NOT NULL, env_id TEXT NOT NULL,
    policy_id TEXT NOT NULL, iteration INTEGER NOT NULL, attempt INTEGER NOT NULL,
    success INTEGER NOT NULL, total_reward REAL NOT NULL, aborted TEXT, n_turns INTEGER NOT NULL,
    created_at REAL NOT NULL, record TEXT NOT NULL, slot INTEGER);
CREATE INDEX IF NOT EXISTS trajectories_run ON trajectories (run_id, iteration);
CREATE INDEX IF NOT EXISTS trajectories_task ON trajectories (task_id);
CREATE TABLE IF NOT EXISTS turns (
    trajectory_id TEXT NOT NULL REFERENCES trajectories (id), idx INTEGER NOT NULL,
    observation TEXT NOT NULL, action TEXT NOT NULL, reward REAL NOT NULL,
    prompt_ids BLOB NOT NULL, completion_ids BLOB NOT NULL, logprobs BLOB,
    parse_error TEXT, info TEXT NOT NULL, PRIMARY KEY (trajectory_id, idx));
CREATE TABLE IF NOT EXISTS memory (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL,
    run_id TEXT, content TEXT NOT NULL, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS memory_kind ON memory (kind, key);
CREATE TABLE IF NOT EXISTS checkpoints (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL, iteration INTEGER NOT NULL, path TEXT NOT NULL,
    parent_id TEXT, info TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS eval_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, checkpoint_id TEXT,
    env_id TEXT NOT NULL, split TEXT NOT NULL, iteration INTEGER, metrics TEXT NOT NULL,
    created_at REAL NOT NULL, slot INTEGER);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, iteration INTEGER NOT NULL, key TEXT NOT NULL, value REAL NOT NULL,
    created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics (run_id, key);
CREATE TABLE IF NOT EXISTS state (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, key));
"""

_UNIQUE = """
CREATE UNIQUE INDEX IF NOT EXISTS trajectories_attempt ON trajectories (run_id, iteration, task_id, attempt)
    WHERE slot = 1;
CREATE UNIQUE INDEX IF NOT EXISTS eval_results_iteration ON eval_results (run_id, iteration, split)
    WHERE slot = 1;
"""


def _statements(script: str) -> list[str]:
    return [s for s in script.split(";") if s.strip()]


def _version(conn: sqlite3.Connection, path: Path) -> int | None:
    """The file's schema version; None for a new (empty) database.

    Raises:
        StoreError: a SQLite database that is not a selfgym store, or a newer schema.
    """
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return None
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() if "meta" in tables else None
    if row is None or not str(row[0]).isdigit():
        shown = ", ".join(sorted(tables)[:5])
        raise StoreError(f"{path} is a SQLite database but not a selfgym store (tables: {shown}); "
                         "pass a run directory written by selfgym")
    version = int(row[0])
    if version > SCHEMA_VERSION:
        raise StoreError(f"{path} was written with store schema v{version}; this selfgym reads schema "
                         f"v1 to v{SCHEMA_VERSION}: upgrade selfgym to open it")
    return version


def open_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Check the file, switch it to WAL and create or migrate the schema (once, under a write lock).

    A store already at ``SCHEMA_VERSION`` is only read here, so readers never wait for a writer.

    Raises:
        StoreError: see ``_version``.
        sqlite3.DatabaseError: the file is not a SQLite database, or is damaged.
    """
    if _version(conn, path) == SCHEMA_VERSION:
        _pragmas(conn)
        return
    _pragmas(conn)
    note = ""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _version(conn, path)  # another process may have created or migrated it meanwhile
        if version is None:
            for statement in _statements(_TABLES + _UNIQUE):
                conn.execute(statement)
            conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif version == 1:
            note = _migrate_1_to_2(conn, path)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if note:
        warnings.warn(note, stacklevel=3)


def _pragmas(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")


def _migrate_1_to_2(conn: sqlite3.Connection, path: Path) -> str:
    """v1 -> v2 in the open transaction. Returns a note on the duplicates found ('' when none)."""
    conn.execute("ALTER TABLE runs ADD COLUMN kind TEXT")
    for run_id, config in conn.execute("SELECT id, config FROM runs").fetchall():
        try:
            is_loop = "trainer" in json.loads(config)  # how v1 told a gym-loop run (loop_run_id)
        except (ValueError, TypeError):
            is_loop = False
        if is_loop:
            conn.execute("UPDATE runs SET kind='loop' WHERE id=?", (run_id,))
    conn.execute("ALTER TABLE trajectories ADD COLUMN slot INTEGER")
    conn.execute("UPDATE trajectories SET slot=1 WHERE run_id IN (SELECT id FROM runs WHERE kind='loop') AND rowid IN "
                 "(SELECT MIN(rowid) FROM trajectories GROUP BY run_id, iteration, task_id, attempt)")
    conn.execute("ALTER TABLE eval_results ADD COLUMN slot INTEGER")
    conn.execute("UPDATE eval_results SET slot=1 WHERE iteration IS NOT NULL AND id IN "
                 "(SELECT MIN(id) FROM eval_results WHERE iteration IS NOT NULL GROUP BY run_id, iteration, split)")
    for statement in _statements(_UNIQUE):
        conn.execute(statement)
    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('migrated', ?)",
                 (json.dumps({"from": 1, "to": SCHEMA_VERSION, "at": time.time()}),))
    found = find_duplicates(conn)
    return f"{path}: store schema v1 migrated to v{SCHEMA_VERSION}; {found.describe()}" if found else ""


@dataclass
class Duplicates:
    """Keys stored more than once (possible only in stores written before schema v2)."""

    attempts: list[tuple[str, int, str, int, list[str]]] = field(default_factory=list)
    """``(run_id, iteration, task_id, attempt, trajectory ids)`` of loop runs."""
    evals: list[tuple[str, int, str, int]] = field(default_factory=list)
    """``(run_id, iteration, split, count)``."""

    def __bool__(self) -> bool:
        return bool(self.attempts or self.evals)

    def describe(self) -> str:
        extra = sum(len(ids) - 1 for *_, ids in self.attempts)
        extra_evals = sum(n - 1 for *_, n in self.evals)
        runs = sorted({a[0] for a in self.attempts} | {e[0] for e in self.evals})
        return (f"{extra} duplicated loop attempts (same run, iteration, task and attempt) and {extra_evals} "
                f"duplicated evaluations (same run, iteration and split) in run(s) {', '.join(runs)}, written by "
                "two processes at once; they are kept, not deleted, and are counted wherever the run is read")


def find_duplicates(conn: sqlite3.Connection, run_id: str | None = None) -> Duplicates:
    where, params = ("AND run_id=?", (run_id,)) if run_id is not None else ("", ())
    attempts = conn.execute(
        "SELECT run_id, iteration, task_id, attempt, GROUP_CONCAT(id, ' ') FROM trajectories "
        f"WHERE run_id IN (SELECT id FROM runs WHERE kind='loop') {where} "
        "GROUP BY run_id, iteration, task_id, attempt HAVING COUNT(*) > 1 ORDER BY MIN(rowid)", params).fetchall()
    evals = conn.execute(
        f"SELECT run_id, iteration, split, COUNT(*) FROM eval_results WHERE iteration IS NOT NULL {where} "
        "GROUP BY run_id, iteration, split HAVING COUNT(*) > 1 ORDER BY MIN(id)", params).fetchall()
    return Duplicates(attempts=[(r[0], r[1], r[2], r[3], str(r[4]).split(" ")) for r in attempts],
                      evals=[(r[0], r[1], r[2], r[3]) for r in evals])
