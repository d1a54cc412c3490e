"""The run store: one SQLite file per run directory (WAL mode).

Everything a run produces goes here: tasks, trajectories with token-exact turns, memory items
(skills, reflections), checkpoints, evaluation results, metrics and small pieces of loop state.
Writes are append-only and each record is written in one transaction, so a killed process loses at
most the episode that was in flight; ``selfgym train --resume`` continues from what is here.

Several processes may write the same store (WAL lets readers and one writer work at once; writers
wait on each other up to ``busy_timeout_s``), but one process writes a *run*: ``selfgym train`` holds
the run's lease (``selfgym.lease``), and the store refuses what the loop must never hold twice: a
second trajectory for a loop run's (iteration, task, attempt) and a second evaluation for a run's
(iteration, split). The schema, its version and the migration of older files are in
``selfgym.store_schema``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from selfgym.errors import DuplicateAttemptError, DuplicateRecordError, StoreError
from selfgym.store_schema import SCHEMA_VERSION, Duplicates, find_duplicates, open_schema
from selfgym.types import Task, Trajectory, Turn

__all__ = ["EVAL_KIND", "SCHEMA_VERSION", "STORE_FILENAME", "Store"]

STORE_FILENAME = "store.sqlite"
EVAL_KIND = "eval"  # the kind of a run holding an evaluation's episodes: no trainer or export reads them
_LOAD_BATCH = 500  # trajectories whose turns are read in one query (SQLite allows 32766 parameters)


def _store_error(path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    """A one-line error naming the file, for SQLite failures that are the file's fault."""
    if type(exc) is sqlite3.DatabaseError:  # not a database, or a damaged one (not a busy or bad query)
        return StoreError(f"{path} is damaged or not a SQLite database ({exc}); move it away or pass another "
                          "run directory")
    return StoreError(f"{path}: {exc}")


def _ids_blob(ids: Iterable[int]) -> bytes:
    return array("q", ids).tobytes()


def _ids_from(blob: bytes) -> list[int]:
    out = array("q")
    out.frombytes(blob)
    return out.tolist()


def _floats_blob(values: list[float] | None) -> bytes | None:
    return None if values is None else array("d", values).tobytes()


def _floats_from(blob: bytes | None) -> list[float] | None:
    if blob is None:
        return None
    out = array("d")
    out.frombytes(blob)
    return out.tolist()


class Store:
    """The SQLite store of one run directory.

    Args:
        path: a run directory (the file is ``<dir>/store.sqlite``) or the ``.sqlite`` file itself.
        busy_timeout_s: how long a writer waits for another process's transaction.
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 60.0) -> None:
        path = Path(path)
        if path.suffix != ".sqlite":
            path.mkdir(parents=True, exist_ok=True)
            path = path / STORE_FILENAME
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        deadline = time.monotonic() + busy_timeout_s
        while True:
            try:
                open_schema(self._conn, path)
                return
            except (StoreError, sqlite3.DatabaseError) as exc:
                # processes opening a new store at once: switching it to WAL answers "locked" at
                # once instead of waiting (SQLite does not call the busy handler there); try again
                if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc) and time.monotonic() < deadline:
                    time.sleep(0.005)
                    continue
                self._conn.close()
                raise exc if isinstance(exc, StoreError) else _store_error(path, exc) from None

    # ------------------------------------------------------------------ plumbing
    class _Tx:
        def __init__(self, store: Store) -> None:
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            self.store._conn.execute("BEGIN IMMEDIATE")
            return self.store._conn

        def __exit__(self, exc_type: Any, *_: Any) -> None:
            try:
                self.store._conn.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                self.store._lock.release()

    def _transaction(self) -> Store._Tx:
        return Store._Tx(self)

    def _all(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock, self._file_errors():
            return self._conn.execute(sql, tuple(params)).fetchall()

    def _one(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        with self._lock, self._file_errors():
            return self._conn.execute(sql, tuple(params)).fetchone()

    def _value(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """The first column of the one row ``sql`` returns (it always returns one)."""
        row = self._one(sql, params)
        if row is None:
            raise StoreError(f"{self.path}: {sql!r} returned no row; the store is damaged")
        return row[0]

    @contextlib.contextmanager
    def _file_errors(self) -> Iterator[None]:
        """A damaged file found by a read becomes a one-line ``StoreError`` naming it."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if type(exc) is not sqlite3.DatabaseError:  # a busy store or a bad query is not the file's fault
                raise
            raise _store_error(self.path, exc) from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def integrity_check(self) -> str:
        """SQLite's own consistency check (``"ok"`` when the file is sound)."""
        return str(self._value("PRAGMA integrity_check"))

    def schema_version(self) -> int:
        return int(self._value("SELECT value FROM meta WHERE key='schema_version'"))

    def duplicates(self, run_id: str | None = None) -> Duplicates:
        """Loop attempts and evaluations stored more than once (only stores written before schema v2
        can hold them; a migration reports them and keeps them)."""
        with self._lock:
            return find_duplicates(self._conn, run_id)

    # ------------------------------------------------------------------ runs
    def create_run(self, run_id: str, config: dict[str, Any] | None = None, *, kind: str | None = None,
                   **info: Any) -> None:
        """Record a run (idempotent: an existing run keeps its first config and kind).

        Args:
            kind: ``"loop"`` for a gym-loop run: the store then holds at most one trajectory per
                (iteration, task, attempt) of it; ``"eval"`` for an evaluation's episodes, which no
                trainer reads (``eval_run_ids``).
        """
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO runs (id, created_at, config, info, kind) VALUES (?, ?, ?, ?, ?)",
                       (run_id, time.time(), json.dumps(config or {}), json.dumps(info), kind))

    def run(self, run_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM runs WHERE id=?", (run_id,))
        if row is None:
            return None
        return {"id": row["id"], "created_at": row["created_at"], "config": json.loads(row["config"]),
                "info": json.loads(row["info"]), "kind": row["kind"]}

    def runs(self, *, include_eval: bool = True) -> list[str]:
        """Run ids, oldest first; ``include_eval=False`` leaves out evaluation runs (kind ``eval``)."""
        where, params = ("", ()) if include_eval else (" WHERE kind IS NOT ?", (EVAL_KIND,))
        return [r[0] for r in self._all(f"SELECT id FROM runs{where} ORDER BY created_at", params)]

    def eval_run_ids(self) -> set[str]:
        """The runs recorded as evaluations: their episodes are scored, never trained on."""
        return {r[0] for r in self._all("SELECT id FROM runs WHERE kind=?", (EVAL_KIND,))}

    # ------------------------------------------------------------------ tasks
    def add_tasks(self, tasks: Iterable[Task], *, run_id: str | None = None) -> int:
        """Insert tasks; ones already stored (same id) are left as they are. Returns how many were new."""
        now, added = time.time(), 0
        with self._transaction() as db:
            for t in tasks:
                cur = db.execute(
                    "INSERT OR IGNORE INTO tasks VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (t.id, t.family, t.split, t.difficulty, t.source, t.parent_id, t.prompt,
                     json.dumps(t.payload), run_id, now),
                )
                added += cur.rowcount
        return added

    def task(self, task_id: str) -> Task | None:
        row = self._one("SELECT * FROM tasks WHERE id=?", (task_id,))
        return None if row is None else self._task_from(row)

    def tasks(self, *, split: str | None = None, family: str | None = None) -> list[Task]:
        sql, params = "SELECT * FROM tasks WHERE 1=1", list[Any]()
        if split is not None:
            sql, params = sql + " AND split=?", [*params, split]
        if family is not None:
            sql, params = sql + " AND family=?", [*params, family]
        return [self._task_from(r) for r in self._all(sql + " ORDER BY created_at, id", params)]

    @staticmethod
    def _task_from(row: sqlite3.Row) -> Task:
        return Task(id=row["id"], family=row["family"], split=row["split"], difficulty=row["difficulty"],
                    source=row["source"], parent_id=row["parent_id"], prompt=row["prompt"],
                    payload=json.loads(row["payload"]))

    # ------------------------------------------------------------------ trajectories
    def add_trajectory(self, traj: Trajectory) -> None:
        """Write one trajectory and its turns in one transaction.

        Raises:
            DuplicateRecordError: a trajectory with this id is stored already (append-only).
            DuplicateAttemptError: the run is a loop run that holds this (iteration, task, attempt)
                already, under another id: a second process writes the run.
        """
        record = traj.to_dict()
        record.pop("turns")
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO trajectories (id, run_id, task_id, env_id, policy_id, iteration, attempt, success,"
                    " total_reward, aborted, n_turns, created_at, record, slot) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,"
                    " (SELECT 1 FROM runs WHERE id=? AND kind='loop'))",
                    (traj.id, traj.run_id, traj.task_id, traj.env_id, traj.policy_id, traj.iteration,
                     traj.attempt, int(traj.success), traj.total_reward, traj.aborted, len(traj.turns),
                     time.time(), json.dumps(record), traj.run_id),
                )
                db.executemany(
                    "INSERT INTO turns VALUES (?,?,?,?,?,?,?,?,?,?)",
                    [(traj.id, i, t.observation, t.action, t.reward, _ids_blob(t.prompt_ids),
                      _ids_blob(t.completion_ids), _floats_blob(t.logprobs), t.parse_error, json.dumps(t.info))
                     for i, t in enumerate(traj.turns)],
                )
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc) and self._one("SELECT 1 FROM trajectories WHERE id=?", (traj.id,)):
                raise DuplicateRecordError(f"trajectory {traj.id!r} is already in {self.path}") from exc
            held = self._one("SELECT id FROM trajectories WHERE run_id=? AND iteration=? AND task_id=? AND attempt=?"
                             " AND slot=1", (traj.run_id, traj.iteration, traj.task_id, traj.attempt))
            if "UNIQUE" in str(exc) and held:
                raise DuplicateAttemptError(
                    f"run {traj.run_id!r} in {self.path} holds iteration {traj.iteration}, task {traj.task_id!r}, "
                    f"attempt {traj.attempt} already (trajectory {held[0]!r}); another process is writing this "
                    "run: stop one of them and continue with --resume") from exc
            raise

    def has_trajectory(self, traj_id: str) -> bool:
        return self._one("SELECT 1 FROM trajectories WHERE id=?", (traj_id,)) is not None

    def trajectory(self, traj_id: str) -> Trajectory | None:
        row = self._one("SELECT record FROM trajectories WHERE id=?", (traj_id,))
        if row is None:
            return None
        data = json.loads(row["record"])
        data["turns"] = self._turns([traj_id]).get(traj_id, [])
        return Trajectory.from_dict(data)

    def trajectories(
        self,
        *,
        run_id: str | None = None,
        task_id: str | None = None,
        iteration: int | None = None,
        success: bool | None = None,
        include_aborted: bool = False,
        split: str | None = None,
        limit: int | None = None,
        include_eval: bool = True,
    ) -> list[Trajectory]:
        """Trajectories matching every filter given, oldest first."""
        return list(self.iter_trajectories(run_id=run_id, task_id=task_id, iteration=iteration, success=success,
                                           include_aborted=include_aborted, split=split, limit=limit,
                                           include_eval=include_eval))

    def iter_trajectories(self, **filters: Any) -> Iterator[Trajectory]:
        """Trajectories matching the filters, their turns read in one query per batch of 500."""
        limit = filters.pop("limit", None)
        where, params = self._trajectory_where(**filters)
        sql = f"SELECT t.record FROM trajectories t WHERE {where} ORDER BY t.rowid"
        rows = self._all(sql + (f" LIMIT {int(limit)}" if limit is not None else ""), params)
        for start in range(0, len(rows), _LOAD_BATCH):
            records = [json.loads(r["record"]) for r in rows[start:start + _LOAD_BATCH]]
            turns = self._turns([data["id"] for data in records])
            for data in records:
                data["turns"] = turns.get(data["id"], [])
                yield Trajectory.from_dict(data)

    def count_trajectories(self, **filters: Any) -> int:
        where, params = self._trajectory_where(**filters)
        return int(self._value(f"SELECT COUNT(*) FROM trajectories t WHERE {where}", params))

    def count_by_task(self, **filters: Any) -> Counter[str]:
        """How many trajectories each task has among those matching the filters (one ``GROUP BY``)."""
        where, params = self._trajectory_where(**filters)
        sql = f"SELECT t.task_id, COUNT(*) AS n FROM trajectories t WHERE {where} GROUP BY t.task_id"
        return Counter({row["task_id"]: int(row["n"]) for row in self._all(sql, params)})

    def attempts_by_task(self, **filters: Any) -> dict[str, set[int]]:
        """The attempt numbers each task has among the trajectories matching the filters."""
        where, params = self._trajectory_where(**filters)
        attempts: dict[str, set[int]] = {}
        for row in self._all(f"SELECT t.task_id, t.attempt FROM trajectories t WHERE {where}", params):
            attempts.setdefault(row["task_id"], set()).add(int(row["attempt"]))
        return attempts

    @staticmethod
    def _trajectory_where(
        *, run_id: str | None = None, task_id: str | None = None, iteration: int | None = None,
        success: bool | None = None, include_aborted: bool = False, split: str | None = None,
        include_eval: bool = True,
    ) -> tuple[str, list[Any]]:
        """The ``WHERE`` clause (over ``trajectories t``) and parameters of the filters
        (``include_eval=False``: leave out the episodes of evaluation runs)."""
        clauses, params = ["1=1"], []
        for column, value in (("t.run_id", run_id), ("t.task_id", task_id), ("t.iteration", iteration)):
            if value is not None:
                clauses.append(f"{column}=?")
                params.append(value)
        if success is not None:
            clauses.append("t.success=?")
            params.append(int(success))
        if not include_aborted:
            clauses.append("t.aborted IS NULL")
        if split is not None:
            clauses.append("t.task_id IN (SELECT id FROM tasks WHERE split=?)")
            params.append(split)
        if not include_eval:
            clauses.append("t.run_id NOT IN (SELECT id FROM runs WHERE kind=?)")
            params.append(EVAL_KIND)
        return " AND ".join(clauses), params

    def _turns(self, trajectory_ids: list[str]) -> dict[str, list[Turn]]:
        """The turns of these trajectories, in order, from one query."""
        marks = ",".join("?" * len(trajectory_ids))
        rows = self._all(f"SELECT * FROM turns WHERE trajectory_id IN ({marks}) ORDER BY trajectory_id, idx",
                         trajectory_ids)
        out: dict[str, list[Turn]] = {}
        for r in rows:
            out.setdefault(r["trajectory_id"], []).append(
                Turn(observation=r["observation"], action=r["action"], reward=r["reward"],
                     prompt_ids=_ids_from(r["prompt_ids"]), completion_ids=_ids_from(r["completion_ids"]),
                     logprobs=_floats_from(r["logprobs"]), parse_error=r["parse_error"], info=json.loads(r["info"])))
        return out

    # ------------------------------------------------------------------ memory, checkpoints, evals
    def add_memory(self, item_id: str, kind: str, key: str, content: dict[str, Any], *,
                   version: int = 1, run_id: str | None = None) -> None:
        """Append a memory item (a skill version, a reflection). Versions are new rows, never updates."""
        try:
            with self._transaction() as db:
                db.execute("INSERT INTO memory VALUES (?,?,?,?,?,?,?)",
                           (item_id, kind, key, version, run_id, json.dumps(content), time.time()))
        except sqlite3.IntegrityError as exc:
            raise DuplicateRecordError(f"memory item {item_id!r} is already stored") from exc

    def memory(self, kind: str, *, key: str | None = None) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM memory WHERE kind=?", [kind]
        if key is not None:
            sql, params = sql + " AND key=?", [*params, key]
        return [{"id": r["id"], "kind": r["kind"], "key": r["key"], "version": r["version"], "run_id": r["run_id"],
                 "created_at": r["created_at"], **json.loads(r["content"])}
                for r in self._all(sql + " ORDER BY rowid", params)]

    def add_checkpoint(self, checkpoint_id: str, *, run_id: str, iteration: int, path: str,
                       parent_id: str | None = None, **info: Any) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO checkpoints VALUES (?,?,?,?,?,?,?)",
                       (checkpoint_id, run_id, iteration, path, parent_id, json.dumps(info), time.time()))

    def checkpoints(self, run_id: str) -> list[dict[str, Any]]:
        return [{"id": r["id"], "iteration": r["iteration"], "path": r["path"], "parent_id": r["parent_id"],
                 "created_at": r["created_at"], **json.loads(r["info"])}
                for r in self._all("SELECT * FROM checkpoints WHERE run_id=? ORDER BY iteration, rowid", (run_id,))]

    def add_eval(self, *, run_id: str, env_id: str, split: str, metrics: dict[str, Any],
                 checkpoint_id: str | None = None, iteration: int | None = None) -> None:
        """Store an evaluation; one per (run, iteration, split) when ``iteration`` is given.

        Raises:
            DuplicateRecordError: the run has an evaluation of this iteration and split already.
        """
        try:
            with self._transaction() as db:
                db.execute("INSERT INTO eval_results (run_id, checkpoint_id, env_id, split, iteration, metrics,"
                           " created_at, slot) VALUES (?,?,?,?,?,?,?,?)",
                           (run_id, checkpoint_id, env_id, split, iteration, json.dumps(metrics), time.time(),
                            None if iteration is None else 1))
        except sqlite3.IntegrityError as exc:
            raise DuplicateRecordError(
                f"run {run_id!r} in {self.path} has a {split} evaluation of iteration {iteration} already; another "
                "process is writing this run: stop one of them and continue with --resume") from exc

    def evals(self, run_id: str, *, transfer: bool | None = False) -> list[dict[str, Any]]:
        """A run's evaluations, oldest first.

        Args:
            transfer: False (default) the held-out evaluations; True only the transfer evaluations
                (split ``transfer:<name>``); None both.
        """
        sql = "SELECT * FROM eval_results WHERE run_id=?"
        if transfer is not None:
            sql += " AND split " + ("LIKE" if transfer else "NOT LIKE") + " 'transfer:%'"
        return [{"run_id": r["run_id"], "checkpoint_id": r["checkpoint_id"], "env_id": r["env_id"],
                 "split": r["split"], "iteration": r["iteration"], "created_at": r["created_at"],
                 "metrics": json.loads(r["metrics"])}
                for r in self._all(sql + " ORDER BY id", (run_id,))]

    # ------------------------------------------------------------------ metrics and loop state
    def log_metrics(self, run_id: str, iteration: int, values: dict[str, float]) -> None:
        now = time.time()
        with self._transaction() as db:
            db.executemany("INSERT INTO metrics VALUES (?,?,?,?,?)",
                           [(run_id, iteration, k, float(v), now) for k, v in values.items()])

    def metrics(self, run_id: str, key: str | None = None) -> list[tuple[int, str, float]]:
        sql, params = "SELECT iteration, key, value FROM metrics WHERE run_id=?", [run_id]
        if key is not None:
            sql, params = sql + " AND key=?", [*params, key]
        return [(r[0], r[1], r[2]) for r in self._all(sql + " ORDER BY rowid", params)]

    def set_state(self, run_id: str, key: str, value: Any) -> None:
        """Save a JSON value of loop state (iteration counter, curriculum, ...)."""
        with self._transaction() as db:
            db.execute("INSERT INTO state VALUES (?,?,?,?) ON CONFLICT (run_id, key) DO UPDATE SET "
                       "value=excluded.value, updated_at=excluded.updated_at",
                       (run_id, key, json.dumps(value), time.time()))

    def get_state(self, run_id: str, key: str, default: Any = None) -> Any:
        row = self._one("SELECT value FROM state WHERE run_id=? AND key=?", (run_id, key))
        return default if row is None else json.loads(row[0])

    # ------------------------------------------------------------------ export
    def export_jsonl(self, path: str | Path, **filters: Any) -> int:
        """Write matching trajectories (token ids included) as JSON lines. Returns the count."""
        n = 0
        with Path(path).open("w", encoding="utf-8") as fh:
            for traj in self.iter_trajectories(**filters):
                fh.write(json.dumps(traj.to_dict()) + "\n")
                n += 1
        return n

    def to_dataset(self, **filters: Any) -> Any:
        """Matching trajectories as a ``datasets.Dataset`` in the chat format TRL's SFTTrainer reads.

        Columns: ``messages`` (system/user/assistant), ``trajectory_id``, ``task_id``, ``success``,
        ``total_reward``.
        """
        import datasets

        rows = [{"messages": t.messages(), "trajectory_id": t.id, "task_id": t.task_id,
                 "success": t.success, "total_reward": t.total_reward}
                for t in self.iter_trajectories(**filters)]
        features = datasets.Features({
            "messages": [{"role": datasets.Value("string"), "content": datasets.Value("string")}],
            "trajectory_id": datasets.Value("string"), "task_id": datasets.Value("string"),
            "success": datasets.Value("bool"), "total_reward": datasets.Value("float64"),
        })
        return datasets.Dataset.from_list(rows, features=features)
