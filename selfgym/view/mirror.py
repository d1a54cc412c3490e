"""An in-memory copy of the trajectory table's small columns, kept by the viewer process.

The store indexes trajectories by (run, iteration) and by task only, so filtering a run of 100,000
episodes on success or family, sorting it by reward or counting it would read the whole
``trajectories`` table (its rows carry each episode's JSON record) on every request, and the viewer
may not add an index to a store it only reads. Trajectories and tasks are append-only (a row is
never updated nor deleted), so the viewer copies the small columns (no record, no turns) into an
in-memory SQLite table, with each task's family, split and difficulty beside them, once, and
afterwards copies only the rows whose ``rowid`` is larger than the last one it has. The copy keeps
the store's ``rowid`` as its own, and per-run totals and menu values as it goes. The trajectory
table's filters, sorts, counts and pages run on it (about 150 bytes per trajectory); text search
and full records still read the store.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["Mirror", "RunTotals", "mirror"]

_SCHEMA = """
CREATE TABLE trajectories (
    rowid_ INTEGER PRIMARY KEY, id TEXT, run_id TEXT, task_id TEXT, env_id TEXT, policy_id TEXT, iteration INTEGER,
    attempt INTEGER, success INTEGER, total_reward REAL, aborted TEXT, n_turns INTEGER, created_at REAL,
    family TEXT, split TEXT, difficulty REAL);
"""
# the store's two indexes, and one per sort of the table led by the run (entries end with the rowid,
# the tie-break); made after the first copy, then ANALYZEd so the planner picks between them
_INDEXES = """
CREATE INDEX trajectories_run ON trajectories (run_id, iteration);
CREATE INDEX trajectories_task ON trajectories (task_id);
""" + "".join(f"CREATE INDEX trajectories_by_{c} ON trajectories (run_id, {c});\n" for c in (
    "rowid_", "total_reward", "n_turns", "success", "task_id", "family", "difficulty"))
_COLUMNS = "id, run_id, task_id, env_id, policy_id, iteration, attempt, success, total_reward, aborted, n_turns, created_at"


@dataclass
class RunTotals:
    """One run's trajectories, summed as they are copied."""

    n: int = 0
    success: int = 0
    aborted: int = 0
    last_write: float | None = None
    policies: dict[str, None] = field(default_factory=dict)  # in first-seen order
    iterations: set[int] = field(default_factory=set)


class Mirror:
    """The copy of one store file (use through ``mirror``)."""

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.executescript(_SCHEMA)
        self.lock = threading.Lock()
        self.last_traj = self.last_task = 0
        self.tasks: dict[str, tuple[str, str, float]] = {}  # id -> (family, split, difficulty)
        self.pending: set[str] = set()  # task ids of copied trajectories whose task was not stored yet
        self.runs: dict[str, RunTotals] = {}

    def refresh(self, store: sqlite3.Connection) -> None:
        """Copy what the store gained since the last refresh (within the store's read snapshot)."""
        top_task = store.execute("SELECT MAX(rowid) FROM tasks").fetchone()[0] or 0
        top_traj = store.execute("SELECT MAX(rowid) FROM trajectories").fetchone()[0] or 0
        if top_task < self.last_task or top_traj < self.last_traj:  # another file now at this path
            self.__init__()  # type: ignore[misc]
        if top_task > self.last_task:
            self._tasks(store, top_task)
        if top_traj > self.last_traj:
            self._trajectories(store, top_traj)

    def _tasks(self, store: sqlite3.Connection, top: int) -> None:
        new = store.execute("SELECT id, family, split, difficulty FROM tasks WHERE rowid > ? AND rowid <= ?",
                            (self.last_task, top)).fetchall()
        self.tasks.update({r[0]: (r[1], r[2], r[3]) for r in new})
        late = [(*self.tasks[r[0]], r[0]) for r in new if r[0] in self.pending]
        if late:
            self.conn.executemany("UPDATE trajectories SET family=?, split=?, difficulty=? WHERE task_id=?", late)
            self.pending.difference_update(r[-1] for r in late)
        self.last_task = top

    def _trajectories(self, store: sqlite3.Connection, top: int) -> None:
        rows = store.execute(f"SELECT rowid, {_COLUMNS} FROM trajectories WHERE rowid > ? AND rowid <= ? ORDER BY rowid",
                             (self.last_traj, top))
        missing = (None, None, None)
        self.conn.execute("BEGIN")
        while batch := rows.fetchmany(5000):
            out = []
            for r in batch:
                task = self.tasks.get(r[3])
                if task is None:
                    self.pending.add(r[3])
                out.append((*r, *(task or missing)))
                totals = self.runs.setdefault(r[2], RunTotals())
                totals.n += 1
                totals.success += int(r[8])
                totals.aborted += r[10] is not None
                totals.last_write = r[12] if totals.last_write is None else max(totals.last_write, r[12])
                totals.policies.setdefault(r[5], None)
                totals.iterations.add(r[6])
            self.conn.executemany(f"INSERT INTO trajectories (rowid_, {_COLUMNS}, family, split, difficulty) "
                                  f"VALUES ({','.join('?' * 16)})", out)
        self.conn.execute("COMMIT")
        if self.last_traj == 0:
            self.conn.executescript(_INDEXES + "ANALYZE;")
        self.last_traj = top

    def totals(self, run_id: str) -> RunTotals:
        return self.runs.get(run_id, RunTotals())


_mirrors: dict[tuple[str, int, int], Mirror] = {}
_lock = threading.Lock()


@contextlib.contextmanager
def mirror(store: sqlite3.Connection) -> Iterator[Mirror]:
    """The up-to-date mirror of ``store``'s file, held (one request at a time) while in use."""
    path = next(r[2] for r in store.execute("PRAGMA database_list") if r[1] == "main")
    st = os.stat(path)
    with _lock:
        m = _mirrors.setdefault((path, st.st_dev, st.st_ino), Mirror())
    with m.lock:
        m.refresh(store)
        yield m
