"""Queries for what a run learned: tasks and their lineage, memory (skills, reflections), the
teacher's accepted tasks, and paired comparisons of two evaluations.

Skills are ``memory`` rows of kind ``skill`` keyed by name (every version and retirement a row) with
usage counts per version in the run's ``skills/usage`` state (``skills.library``). The teacher
stores only accepted tasks (split ``generated``, ``parent_id`` = the failed task, the judge's pass
rate in ``payload["generator"]``) and its ``teacher/*`` counts per iteration; every proposal of an
iteration, accepted or not, with its verdict and reason, is the run's ``teacher/proposals/<iteration>``
state (written by the loop's teach stage; runs from before it have counts only).
"""

from __future__ import annotations

import difflib
import json
import sqlite3
from typing import Any

import numpy as np

from selfgym.stats import paired_difference
from selfgym.view.mirror import mirror
from selfgym.view.source import ViewError

__all__ = ["paired", "skills", "task", "teacher"]

SHOWN_WINDOW = 5_000  # newest trajectories whose records the skill page reads for the skill's id
TEACHER_COUNTS = ("teacher/proposed", "teacher/valid", "teacher/accepted", "teacher/rejected_invalid",
                  "teacher/rejected_decontam", "teacher/rejected_duplicate", "teacher/rejected_learnability",
                  "teacher/aborted")


def _task_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {**dict(row), "payload": json.loads(row["payload"])}


def task(conn: sqlite3.Connection, task_id: str) -> dict[str, Any]:
    """A task with its ancestors (parent chain), children, attempts per run and the trajectories
    that led the teacher to it (failures of its parent in the iteration before it was proposed)."""
    row = conn.execute("SELECT * FROM tasks WHERE id=?", (task_id,)).fetchone()
    if row is None:
        raise ViewError(404, "Unknown task", f"this store has no task {task_id!r}.")
    out = _task_dict(row)
    ancestors: list[dict[str, Any]] = []
    seen, parent = {task_id}, out["parent_id"]
    while parent and parent not in seen and len(ancestors) < 20:
        seen.add(parent)
        prow = conn.execute("SELECT * FROM tasks WHERE id=?", (parent,)).fetchone()
        ancestors.append(_task_dict(prow) if prow else {"id": parent, "missing": True})
        parent = prow["parent_id"] if prow else None
    out["ancestors"] = ancestors
    out["children"] = [_task_dict(r) for r in conn.execute("SELECT * FROM tasks WHERE parent_id=? ORDER BY created_at",
                                                           (task_id,))]
    out["stats"] = [dict(r) for r in conn.execute(
        "SELECT run_id, COUNT(*) AS n, TOTAL(success) AS ok, COUNT(aborted) AS aborted FROM trajectories "
        "WHERE task_id=? GROUP BY run_id", (task_id,))]
    out["generator"] = out["payload"].get("generator") if isinstance(out["payload"], dict) else None
    out["sources"] = source_failures(conn, out)
    out["proposal"] = proposal_of(conn, out["generator"], task_id)
    return out


def stored_tasks(conn: sqlite3.Connection, task_ids: list[str]) -> set[str]:
    """Which of these task ids the store holds (in chunks below SQLite's parameter limit)."""
    found: set[str] = set()
    for start in range(0, len(task_ids), 500):
        chunk = task_ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(r[0] for r in conn.execute(f"SELECT id FROM tasks WHERE id IN ({marks})", chunk))
    return found


def source_failures(conn: sqlite3.Connection, task_row: dict[str, Any]) -> list[dict[str, Any]]:
    """The parent's failed attempts the teacher saw: the iteration before the task was proposed."""
    gen, parent = task_row.get("generator"), task_row.get("parent_id")
    if not gen or not parent:
        return []
    return [dict(r) for r in conn.execute(
        "SELECT id, iteration, attempt, total_reward FROM trajectories WHERE task_id=? AND run_id=? AND iteration=? "
        "AND success=0 AND aborted IS NULL ORDER BY attempt", (parent, gen.get("run_id"), gen.get("iteration", 0) - 1))]


def teacher(conn: sqlite3.Connection, run_id: str) -> dict[str, Any]:
    """Counts per iteration and each accepted task: parent (failed task), pass rate, later attempts."""
    counts: dict[int, dict[str, float]] = {}
    marks = ",".join("?" * len(TEACHER_COUNTS))
    for it, key, value in conn.execute(f"SELECT iteration, key, value FROM metrics WHERE run_id=? AND key IN ({marks}) "
                                       "ORDER BY rowid", (run_id, *TEACHER_COUNTS)):
        counts.setdefault(it, {})[key] = value
    accepted = []
    for r in conn.execute("SELECT * FROM tasks WHERE split='generated' AND run_id=? ORDER BY created_at", (run_id,)):
        row = _task_dict(r)
        row["generator"] = row["payload"].get("generator", {}) if isinstance(row["payload"], dict) else {}
        accepted.append(row)
    played: dict[str, tuple[int, float]] = {}
    with mirror(conn) as m:  # attempts of each accepted task since, by the task index of the mirror
        for start in range(0, len(accepted), 500):
            chunk = [t["id"] for t in accepted[start:start + 500]]
            played.update({r[0]: (r[1], r[2]) for r in m.conn.execute(
                f"SELECT task_id, COUNT(*), TOTAL(success) FROM trajectories WHERE task_id IN ({','.join('?' * len(chunk))})"
                " AND aborted IS NULL GROUP BY task_id", chunk)})
    for row in accepted:
        row["n"], row["ok"] = played.get(row["id"], (0, 0.0))
    return {"counts": counts, "accepted": accepted, "proposals": proposals(conn, run_id)}


def proposals(conn: sqlite3.Connection, run_id: str, status: str = "") -> list[dict[str, Any]]:
    """Every stored teacher proposal of the run, by iteration then order: its ``teacher/proposals/<it>``
    row plus ``iteration``, ``index`` and ``anchor`` (the id of its row on the teacher page)."""
    out: list[dict[str, Any]] = []
    rows = conn.execute("SELECT key, value FROM state WHERE run_id=? AND key LIKE 'teacher/proposals/%'",
                        (run_id,)).fetchall()
    for key, value in sorted(rows, key=lambda r: int(r[0].rsplit("/", 1)[1])):
        iteration = int(key.rsplit("/", 1)[1])
        for index, row in enumerate(json.loads(value)):
            if not status or row.get("status") == status:
                out.append({**row, "iteration": iteration, "index": index, "anchor": f"proposal-{iteration}-{index}"})
    return out


def proposal_of(conn: sqlite3.Connection, generator: dict[str, Any] | None, task_id: str) -> dict[str, Any] | None:
    """The stored proposal that became accepted task ``task_id`` (None for runs from before proposals were stored)."""
    if not generator or generator.get("iteration") is None or not generator.get("run_id"):
        return None
    row = conn.execute("SELECT value FROM state WHERE run_id=? AND key=?",
                       (generator["run_id"], f"teacher/proposals/{generator['iteration']}")).fetchone()
    for index, proposal in enumerate(json.loads(row[0]) if row else []):
        if proposal.get("task_id") == task_id:
            return {**proposal, "iteration": generator["iteration"], "index": index,
                    "anchor": f"proposal-{generator['iteration']}-{index}"}
    return None


def reflections(conn: sqlite3.Connection, run_id: str, limit: int = 200) -> list[dict[str, Any]]:
    return [{**dict(r), "content": json.loads(r["content"])} for r in conn.execute(
        "SELECT id, key, version, created_at, content FROM memory WHERE kind='reflection' AND (run_id=? OR run_id IS "
        "NULL) ORDER BY rowid DESC LIMIT ?", (run_id, limit))]


def memory_items(conn: sqlite3.Connection, item_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Memory rows by id (reflections); skill ids (``skill:<name>@v<n>``) are not rows and are skipped."""
    rows = [i for i in item_ids if not i.startswith("skill:")]
    if not rows:
        return {}
    marks = ",".join("?" * len(rows))
    return {r["id"]: {**dict(r), "content": json.loads(r["content"])}
            for r in conn.execute(f"SELECT * FROM memory WHERE id IN ({marks})", rows)}


def memory_item(conn: sqlite3.Connection, item_id: str) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM memory WHERE id=?", (item_id,)).fetchone()
    if row is None:
        raise ViewError(404, "Unknown memory item", f"this store has no memory item {item_id!r}.")
    return {**dict(row), "content": json.loads(row["content"])}


def skills(conn: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    """Each skill's newest row (the skill as it is now) with its current version's usage."""
    usage = _usage(conn, run_id)
    latest: dict[str, dict[str, Any]] = {}
    versions: dict[str, int] = {}
    for r in conn.execute("SELECT id, key, version, created_at, content FROM memory WHERE kind='skill' AND "
                          "(run_id=? OR run_id IS NULL) ORDER BY rowid", (run_id,)):
        content = json.loads(r["content"])
        versions[r["key"]] = versions.get(r["key"], 0) + 1
        latest[r["key"]] = {**content, "row_id": r["id"], "rows": versions[r["key"]]}
    out = []
    for name, s in latest.items():
        uses, wins = usage.get(f"skill:{name}@v{s.get('version', 1)}", [0, 0])
        out.append({**s, "name": name, "uses": uses, "successes": wins, "rate": wins / uses if uses else None})
    return out


def _usage(conn: sqlite3.Connection, run_id: str) -> dict[str, list[int]]:
    row = conn.execute("SELECT value FROM state WHERE run_id=? AND key='skills/usage'", (run_id,)).fetchone()
    return json.loads(row[0]) if row else {}


def skill(conn: sqlite3.Connection, run_id: str, name: str) -> dict[str, Any]:
    """Every row of one skill (versions and retirements), each with a diff against the one before,
    its usage, and the trajectories whose prompt showed it."""
    usage = _usage(conn, run_id)
    rows = [{**json.loads(r["content"]), "row_id": r["id"], "stored_at": r["created_at"]} for r in conn.execute(
        "SELECT id, created_at, content FROM memory WHERE kind='skill' AND key=? AND (run_id=? OR run_id IS NULL) "
        "ORDER BY rowid", (name, run_id))]
    if not rows:
        raise ViewError(404, "Unknown skill", f"run {run_id!r} has no skill {name!r}.")
    before = ""
    for row in rows:
        uses, wins = usage.get(f"skill:{name}@v{row.get('version', 1)}", [0, 0])
        row.update(uses=uses, successes=wins, rate=wins / uses if uses else None)
        row["diff"] = "".join(difflib.unified_diff(before.splitlines(True), row.get("code", "").splitlines(True),
                                                   "before", f"v{row.get('version', 1)}"))
        before = row.get("code", "")
    top = conn.execute("SELECT MAX(rowid) FROM trajectories").fetchone()[0] or 0
    shown = [dict(r) for r in conn.execute(
        "SELECT id, iteration, success FROM trajectories WHERE rowid > ? AND +run_id=? AND instr(record, ?) > 0 "
        "ORDER BY rowid DESC LIMIT 50", (top - SHOWN_WINDOW, run_id, f'"skill:{name}@v'))]
    return {"name": name, "rows": rows, "current": rows[-1], "shown_in": shown, "window": SHOWN_WINDOW}


def skills_from(conn: sqlite3.Connection, traj_id: str) -> list[dict[str, Any]]:
    """Skill rows extracted from a trajectory (its id is the row's ``source_trajectory_id``)."""
    rows = conn.execute("SELECT key, version, run_id, content FROM memory WHERE kind='skill' AND instr(content, ?) > 0 "
                        "ORDER BY rowid", (traj_id,)).fetchall()
    return [{"name": r["key"], "version": r["version"], "run_id": r["run_id"]} for r in rows
            if json.loads(r["content"]).get("source_trajectory_id") == traj_id]


def snapshots(conn: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    out = []
    for r in conn.execute("SELECT key, created_at, content FROM memory WHERE kind='skill_snapshot' AND "
                          "(run_id=? OR run_id IS NULL) ORDER BY rowid", (run_id,)):
        content = json.loads(r["content"])
        out.append({"id": r["key"], "created_at": r["created_at"], "checkpoint_id": content.get("checkpoint_id"),
                    "skills": [f"{s['name']}@v{s.get('version', 1)}" for s in content.get("skills", [])]})
    return out


def paired(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Task-by-task comparison of two evaluations' outcomes (the tasks both scored).

    A task is a win when its success rate under ``b`` is higher than under ``a``. ``diff`` is the
    mean paired difference (b - a) with a bootstrap 95% CI (``selfgym.stats.paired_difference``).
    """
    out_a, out_b = a["metrics"].get("outcomes", {}), b["metrics"].get("outcomes", {})
    rows = []
    for task_id in sorted(set(out_a) & set(out_b)):
        ra, rb = float(np.mean(out_a[task_id])), float(np.mean(out_b[task_id]))
        rows.append({"task_id": task_id, "a": ra, "b": rb, "diff": rb - ra,
                     "verdict": "win" if rb > ra else "loss" if rb < ra else "tie"})
    diff, ci, n = paired_difference(out_a, out_b)
    return {"rows": rows, "n": n, "only_a": len(set(out_a) - set(out_b)), "only_b": len(set(out_b) - set(out_a)),
            "wins": sum(r["verdict"] == "win" for r in rows), "losses": sum(r["verdict"] == "loss" for r in rows),
            "ties": sum(r["verdict"] == "tie" for r in rows), "diff": diff, "ci95": ci}
