"""The viewer's SQL: every page reads what it shows with a few indexed queries, never a whole run.

Tables and columns are the store's (``selfgym.store_schema``). The trajectory table pages with
``LIMIT``/``OFFSET`` over the ``trajectories_run`` and ``trajectories_task`` indexes; its search
looks into the turns' text, so a search page reads one row more than it shows instead of counting.
"""

from __future__ import annotations

import json
import sqlite3
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from typing import Any

from selfgym.view.source import ViewError

__all__ = ["SORTS", "TrajectoryFilter", "trajectory_page", "trajectory_rows_jsonl"]

# sort name -> SQL expression (whitelisted: the sort comes from the URL)
SORTS = {"newest": "t.rowid", "iteration": "t.iteration", "reward": "t.total_reward", "turns": "t.n_turns",
         "success": "t.success", "task": "t.task_id", "difficulty": "k.difficulty", "family": "k.family"}
_TRAJ_COLUMNS = ("t.id, t.run_id, t.task_id, t.env_id, t.policy_id, t.iteration, t.attempt, t.success, "
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
    n, ok, aborted, last = conn.execute(
        "SELECT COUNT(*), TOTAL(success), COUNT(aborted), MAX(created_at) FROM trajectories WHERE run_id=?",
        (run_id,)).fetchone()
    config = json.loads(row["config"])
    state = conn.execute("SELECT value FROM state WHERE run_id=? AND key='iteration'", (run_id,)).fetchone()
    evals = run_evals(conn, run_id)
    return {"id": run_id, "kind": row["kind"], "created_at": row["created_at"], "config": config,
            "info": json.loads(row["info"]), "n_trajectories": n, "n_success": int(ok), "n_aborted": aborted,
            "last_write": last, "iterations_done": json.loads(state[0]) if state else 0,
            "iterations": config.get("iterations"), "evals": evals,
            "first_eval": evals[0] if evals else None, "last_eval": evals[-1] if evals else None}


def run_evals(conn: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    """The run's evaluations, oldest first; ``metrics`` parsed."""
    rows = conn.execute("SELECT id, run_id, checkpoint_id, env_id, split, iteration, metrics, created_at "
                        "FROM eval_results WHERE run_id=? ORDER BY id", (run_id,)).fetchall()
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
@dataclass(frozen=True, kw_only=True)
class TrajectoryFilter:
    """What the trajectory table shows; every field comes from the URL (empty: no filter)."""

    run: str = ""
    iteration: str = ""
    family: str = ""
    split: str = ""
    difficulty: str = ""
    success: str = ""  # "1" | "0"
    aborted: str = "no"  # "no" | "yes" | "any"
    policy: str = ""
    task: str = ""
    q: str = ""  # text searched in the turns' actions and observations
    sort: str = "newest"
    order: str = "desc"
    page: int = 1
    per: int = 50

    @classmethod
    def from_query(cls, query: dict[str, str]) -> TrajectoryFilter:
        names = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: v.strip() for k, v in query.items() if k in names}
        try:
            values["page"] = max(1, int(values.get("page", 1)))
            values["per"] = min(500, max(1, int(values.get("per", 50))))
            if values.get("iteration"):
                int(values["iteration"])
            if values.get("difficulty"):
                float(values["difficulty"])
        except ValueError as exc:
            raise ViewError(400, "Bad filter", f"page, per and iteration take whole numbers, difficulty a "
                            f"number ({exc}).") from None
        if values.get("sort", "newest") not in SORTS:
            raise ViewError(400, "Bad sort", f"sort must be one of {', '.join(SORTS)}.")
        if values.get("order", "desc") not in ("asc", "desc"):
            raise ViewError(400, "Bad order", "order must be asc or desc.")
        return cls(**values)

    def query(self, **changes: Any) -> dict[str, str]:
        """This filter (changed) as URL parameters, defaults left out."""
        f = replace(self, **changes)
        default = TrajectoryFilter()
        return {x.name: str(getattr(f, x.name)) for x in fields(f) if getattr(f, x.name) != getattr(default, x.name)}

    def where(self) -> tuple[str, list[Any]]:
        clauses, params = ["1=1"], list[Any]()
        for column, value in (("t.run_id", self.run), ("k.family", self.family), ("k.split", self.split),
                              ("t.policy_id", self.policy), ("t.task_id", self.task)):
            if value:
                clauses.append(f"{column}=?")
                params.append(value)
        if self.iteration:
            clauses.append("t.iteration=?")
            params.append(int(self.iteration))
        if self.difficulty:
            clauses.append("ABS(k.difficulty - ?) < 1e-9")
            params.append(float(self.difficulty))
        if self.success in ("0", "1"):
            clauses.append("t.success=?")
            params.append(int(self.success))
        if self.aborted == "no":
            clauses.append("t.aborted IS NULL")
        elif self.aborted == "yes":
            clauses.append("t.aborted IS NOT NULL")
        if self.q:
            clauses.append("EXISTS (SELECT 1 FROM turns u WHERE u.trajectory_id=t.id AND "
                           "(instr(u.action, ?) > 0 OR instr(u.observation, ?) > 0))")
            params += [self.q, self.q]
        return " AND ".join(clauses), params


def _from(f: TrajectoryFilter) -> str:
    # the tasks join is needed only to filter or sort on a task column; the page rows always get it
    return "trajectories t LEFT JOIN tasks k ON k.id = t.task_id"


def trajectory_page(conn: sqlite3.Connection, f: TrajectoryFilter) -> tuple[list[dict[str, Any]], int | None, bool]:
    """One page of the table: rows, the total (None for a text search) and whether a next page exists."""
    where, params = f.where()
    order = f"{SORTS[f.sort]} {f.order.upper()}" + ("" if f.sort == "newest" else f", t.rowid {f.order.upper()}")
    sql = (f"SELECT {_TRAJ_COLUMNS} FROM {_from(f)} WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?")
    rows = _dicts(conn.execute(sql, [*params, f.per + 1, (f.page - 1) * f.per]).fetchall())
    more = len(rows) > f.per
    total = None
    if not f.q:
        total = int(conn.execute(f"SELECT COUNT(*) FROM {_from(f)} WHERE {where}", params).fetchone()[0])
    return rows[: f.per], total, more


def trajectory_rows_jsonl(conn: sqlite3.Connection, f: TrajectoryFilter, batch: int = 200) -> Iterator[str]:
    """Every trajectory matching ``f`` (all pages) as JSON lines of ``Trajectory.to_dict()``, in batches."""
    where, params = f.where()
    last = None
    while True:
        keyset = "" if last is None else " AND t.rowid > ?"
        rows = conn.execute(f"SELECT t.rowid AS rid, t.id, t.record FROM {_from(f)} WHERE {where}{keyset} "
                            "ORDER BY t.rowid LIMIT ?", [*params, *([] if last is None else [last]), batch]).fetchall()
        if not rows:
            return
        turns = turns_of(conn, [r["id"] for r in rows])
        for r in rows:
            data = json.loads(r["record"])
            data["turns"] = turns.get(r["id"], [])
            yield json.dumps(data) + "\n"
        last = rows[-1]["rid"]


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


def filter_choices(conn: sqlite3.Connection, run_id: str) -> dict[str, list[Any]]:
    """The values the filter menus offer for a run (distinct over indexed or small columns)."""
    q = "SELECT DISTINCT {col} FROM {table} WHERE run_id=? ORDER BY 1"
    return {
        "iteration": [r[0] for r in conn.execute(q.format(col="iteration", table="trajectories"), (run_id,))],
        "policy": [r[0] for r in conn.execute(q.format(col="policy_id", table="trajectories"), (run_id,))],
        "family": [r[0] for r in conn.execute("SELECT DISTINCT family FROM tasks ORDER BY 1")],
        "split": [r[0] for r in conn.execute("SELECT DISTINCT split FROM tasks ORDER BY 1")],
        "difficulty": [r[0] for r in conn.execute("SELECT DISTINCT difficulty FROM tasks ORDER BY 1 LIMIT 50")],
    }


def trajectory(conn: sqlite3.Connection, traj_id: str) -> dict[str, Any]:
    """One trajectory: its row, record, turns (ids and log-probs decoded) and task."""
    row = conn.execute(f"SELECT {_TRAJ_COLUMNS}, t.record FROM trajectories t LEFT JOIN tasks k ON k.id=t.task_id "
                       "WHERE t.id=?", (traj_id,)).fetchone()
    if row is None:
        raise ViewError(404, "Unknown trajectory", f"this store has no trajectory {traj_id!r}.")
    out = dict(row)
    out["record"] = json.loads(out["record"])
    out["turns"] = turns_of(conn, [traj_id]).get(traj_id, [])
    return out


def attempts_of_task(conn: sqlite3.Connection, task_id: str, limit: int = 200) -> list[dict[str, Any]]:
    return _dicts(conn.execute(f"SELECT {_TRAJ_COLUMNS} FROM trajectories t LEFT JOIN tasks k ON k.id=t.task_id "
                               "WHERE t.task_id=? ORDER BY t.run_id, t.iteration, t.attempt LIMIT ?",
                               (task_id, limit)).fetchall())
