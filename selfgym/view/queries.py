"""The viewer's SQL for runs, evaluations and single trajectories (tables and columns are the
store's, ``selfgym.store_schema``); the trajectory table is ``selfgym.view.table``.

Every query here reads what a page shows through a primary key or an index, never a whole run;
run totals come from the process's mirror of the trajectory table (``selfgym.view.mirror``).
"""

from __future__ import annotations

import json
import sqlite3
from array import array
from typing import Any

from selfgym.view.mirror import mirror
from selfgym.view.source import ViewError

__all__ = ["run", "runs", "trajectory", "turns_of"]

TRAJ_COLUMNS = ("t.id, t.run_id, t.task_id, t.env_id, t.policy_id, t.iteration, t.attempt, t.success, "
                 "t.total_reward, t.aborted, t.n_turns, t.created_at, k.family, k.split, k.difficulty")


def ids(blob: bytes | None) -> list[int]:
    out = array("q")
    if blob:
        out.frombytes(blob)
    return out.tolist()


def floats(blob: bytes | None) -> list[float] | None:
    if blob is None:
        return None
    out = array("d")
    out.frombytes(blob)
    return out.tolist()


def _dicts(rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
    return [dict(r) for r in rows]


# ---------------------------------------------------------------------------------------------- runs
def runs(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every run with its counts, config and progress (for the runs page)."""
    out = []
    for r in conn.execute("SELECT * FROM runs ORDER BY created_at"):
        out.append(run_summary(conn, r))
    return out


def run(conn: sqlite3.Connection, run_id: str) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
    if row is None:
        known = ", ".join(r[0] for r in conn.execute("SELECT id FROM runs ORDER BY created_at LIMIT 10"))
        raise ViewError(404, "Unknown run", f"this store has no run {run_id!r} (runs: {known or 'none'}).")
    return run_summary(conn, row)


def run_summary(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    run_id = row["id"]
    with mirror(conn) as m:
        totals = m.totals(run_id)
    config = json.loads(row["config"])
    state = conn.execute("SELECT value FROM state WHERE run_id=? AND key='iteration'", (run_id,)).fetchone()
    evals = run_evals(conn, run_id)
    return {"id": run_id, "kind": row["kind"], "created_at": row["created_at"], "config": config,
            "info": json.loads(row["info"]), "n_trajectories": totals.n, "n_success": totals.success,
            "n_aborted": totals.aborted, "last_write": totals.last_write, "iterations_done": json.loads(state[0]) if state else 0,
            "iterations": config.get("iterations"), "evals": evals,
            "first_eval": evals[0] if evals else None, "last_eval": evals[-1] if evals else None}


def run_evals(conn: sqlite3.Connection, run_id: str, *, transfer: bool = False) -> list[dict[str, Any]]:
    """The run's held-out evaluations (``transfer``: its ``transfer:<name>`` ones instead), oldest
    first; ``metrics`` parsed."""
    like = "LIKE" if transfer else "NOT LIKE"
    rows = conn.execute("SELECT id, run_id, checkpoint_id, env_id, split, iteration, metrics, created_at "
                        f"FROM eval_results WHERE run_id=? AND split {like} 'transfer:%' ORDER BY id",
                        (run_id,)).fetchall()
    return [{**dict(r), "metrics": json.loads(r["metrics"])} for r in rows]


def eval_row(conn: sqlite3.Connection, eval_id: int) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM eval_results WHERE id=?", (eval_id,)).fetchone()
    if row is None:
        raise ViewError(404, "Unknown evaluation", f"this store has no evaluation {eval_id}.")
    return {**dict(row), "metrics": json.loads(row["metrics"])}


def iterations(conn: sqlite3.Connection, run_id: str) -> dict[int, dict[str, float]]:
    """``{iteration: {metric key: last value}}`` of the run's logged metrics."""
    out: dict[int, dict[str, float]] = {}
    for it, key, value in conn.execute("SELECT iteration, key, value FROM metrics WHERE run_id=? ORDER BY rowid",
                                       (run_id,)):
        out.setdefault(it, {})[key] = value
    return out


def checkpoints(conn: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    return _dicts(conn.execute("SELECT id, iteration, path, parent_id, created_at FROM checkpoints "
                               "WHERE run_id=? ORDER BY iteration, rowid", (run_id,)).fetchall())


def state(conn: sqlite3.Connection, run_id: str, key: str, default: Any = None) -> Any:
    row = conn.execute("SELECT value FROM state WHERE run_id=? AND key=?", (run_id, key)).fetchone()
    return default if row is None else json.loads(row[0])


# ---------------------------------------------------------------------------------------------- trajectories
def turns_of(conn: sqlite3.Connection, traj_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    marks = ",".join("?" * len(traj_ids))
    out: dict[str, list[dict[str, Any]]] = {}
    for r in conn.execute(f"SELECT * FROM turns WHERE trajectory_id IN ({marks}) ORDER BY trajectory_id, idx",
                          traj_ids):
        out.setdefault(r["trajectory_id"], []).append(
            {"observation": r["observation"], "action": r["action"], "reward": r["reward"],
             "prompt_ids": ids(r["prompt_ids"]), "completion_ids": ids(r["completion_ids"]),
             "logprobs": floats(r["logprobs"]), "parse_error": r["parse_error"], "info": json.loads(r["info"])})
    return out


def trajectory(conn: sqlite3.Connection, traj_id: str) -> dict[str, Any]:
    """One trajectory: its row, record, turns (ids and log-probs decoded) and task."""
    row = conn.execute(f"SELECT {TRAJ_COLUMNS}, t.record FROM trajectories t LEFT JOIN tasks k ON k.id=t.task_id "
                       "WHERE t.id=?", (traj_id,)).fetchone()
    if row is None:
        raise ViewError(404, "Unknown trajectory", f"this store has no trajectory {traj_id!r}.")
    out = dict(row)
    out["record"] = json.loads(out["record"])
    out["turns"] = turns_of(conn, [traj_id]).get(traj_id, [])
    return out


def attempts_of_task(conn: sqlite3.Connection, task_id: str, limit: int = 200) -> list[dict[str, Any]]:
    return _dicts(conn.execute(f"SELECT {TRAJ_COLUMNS} FROM trajectories t LEFT JOIN tasks k ON k.id=t.task_id "
                               "WHERE t.task_id=? ORDER BY t.run_id, t.iteration, t.attempt LIMIT ?",
                               (task_id, limit)).fetchall())
