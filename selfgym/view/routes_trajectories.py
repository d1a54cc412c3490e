"""Pages of episodes: the filtered trajectory table, one trajectory, two attempts compared, a task."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from selfgym.view import lineage, table
from selfgym.view import queries as q
from selfgym.view.app import View
from selfgym.view.source import connect
from selfgym.view.tokens import heat_tokens, tokenizer_for

__all__ = ["register"]


def _tokenizer(conn: Any, run_dir: Path, traj: dict[str, Any]) -> Any | None:
    """The tokenizer of the policy that played ``traj``, when one of its folders has a
    ``tokenizer.json``: the checkpoint's, the policy id itself (a model folder), the run's model."""
    candidates = []
    row = conn.execute("SELECT path FROM checkpoints WHERE id=?", (traj["policy_id"],)).fetchone()
    if row is not None:
        candidates += [row[0], str(run_dir / row[0])]
    candidates.append(traj["policy_id"])
    row = conn.execute("SELECT config FROM runs WHERE id=?", (traj["run_id"],)).fetchone()
    if row is not None:
        candidates.append(str(json.loads(row[0]).get("policy", {}).get("model", "")))
    return next((t for c in candidates if c and (t := tokenizer_for(c)) is not None), None)


def _transcript(traj: dict[str, Any]) -> list[str]:
    lines = []
    for i, turn in enumerate(traj["turns"]):
        lines += [f"--- turn {i} observation", *turn["observation"].splitlines(), f"--- turn {i} action",
                  *turn["action"].splitlines(), f"--- turn {i} reward {turn['reward']}"]
    final = traj["record"].get("info", {}).get("final_observation")
    if final is not None:
        lines += ["--- feedback", *str(final).splitlines()]
    return lines


def _stream(view: View, store: str, f: table.TrajectoryFilter) -> Iterator[str]:
    """Matching trajectories as JSON lines, read batch by batch over a connection of their own."""
    with connect(view.ref(store)) as conn:
        yield from table.jsonl_lines(conn, f)


def register(app: FastAPI, view: View) -> None:
    @app.get("/s/{store}/trajectories")
    def trajectory_table(request: Request, store: str, format: str = "html") -> Response:
        params = {k: v for k, v in request.query_params.items() if k != "format"}
        with connect(view.ref(store)) as conn:
            if not params.get("run"):
                params["run"] = view.default_run(conn, None)
            f = table.TrajectoryFilter.from_query(params)
            if format == "jsonl":
                return view.jsonl(_stream(view, store, f), "trajectories.jsonl")
            page = table.page(conn, f)
            choices = table.filter_choices(conn, f.run)
        return view.page("trajectories.html", store=store, f=f, p=page, rows=page.rows, choices=choices, run_id=f.run,
                         sorts=list(table.SORTS))

    @app.get("/s/{store}/trajectory/{traj_id:path}")
    def trajectory(store: str, traj_id: str, raw: int = 0) -> Response:
        with connect(view.ref(store)) as conn:
            traj = q.trajectory(conn, traj_id)
            memory_ids = [i for ids in traj["record"].get("memory", {}).values() for i in ids]
            memory = lineage.memory_items(conn, memory_ids)
            siblings = [s for s in q.attempts_of_task(conn, traj["task_id"]) if s["id"] != traj_id]
            task = conn.execute("SELECT prompt, source, parent_id FROM tasks WHERE id=?", (traj["task_id"],)).fetchone()
            extracted = lineage.skills_from(conn, traj_id)
            tokenizer = _tokenizer(conn, view.ref(store).run_dir, traj)
        for turn in traj["turns"]:
            turn["heat"] = heat_tokens(turn["completion_ids"], turn["logprobs"], tokenizer)
        return view.page("trajectory.html", store=store, t=traj, memory=memory, siblings=siblings[:30],
                         task=dict(task) if task else None, extracted=extracted,
                         decoded=tokenizer is not None, raw=bool(raw), run_id=traj["run_id"])

    @app.get("/s/{store}/compare")
    def compare(store: str, a: str, b: str) -> Response:
        with connect(view.ref(store)) as conn:
            ta, tb = q.trajectory(conn, a), q.trajectory(conn, b)
        diff = difflib.HtmlDiff(wrapcolumn=60).make_table(_transcript(ta), _transcript(tb), a, b)
        return view.page("compare.html", store=store, a=ta, b=tb, diff=diff, run_id=ta["run_id"],
                         same_task=ta["task_id"] == tb["task_id"])

    @app.get("/s/{store}/task")
    def task(store: str, id: str) -> Response:
        with connect(view.ref(store)) as conn:
            info = lineage.task(conn, id)
            attempts = q.attempts_of_task(conn, id, limit=100)
        run_id = (info.get("generator") or {}).get("run_id") or info.get("run_id") or ""
        return view.page("task.html", store=store, task=info, attempts=attempts, run_id=run_id)
