"""Pages of what a run learned: skills and their versions, reflections, the teacher's tasks."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response

from selfgym.view import lineage
from selfgym.view import queries as q
from selfgym.view.app import View
from selfgym.view.source import connect

__all__ = ["register"]


def register(app: FastAPI, view: View) -> None:
    @app.get("/s/{store}/skills")
    def skills(store: str, run: str = "", format: str = "html") -> Response:
        with connect(view.ref(store)) as conn:
            run_id = view.default_run(conn, run)
            q.run(conn, run_id)
            rows = lineage.skills(conn, run_id)
            snaps = lineage.snapshots(conn, run_id)
        if format == "jsonl":
            return view.jsonl(rows, "skills.jsonl")
        return view.page("skills.html", store=store, run_id=run_id, skills=rows, snapshots=snaps)

    @app.get("/s/{store}/skill/{name}")
    def skill(store: str, name: str, run: str = "") -> Response:
        with connect(view.ref(store)) as conn:
            run_id = view.default_run(conn, run)
            info = lineage.skill(conn, run_id, name)
        return view.page("skill.html", store=store, run_id=run_id, s=info)

    @app.get("/s/{store}/reflections")
    def reflections(store: str, run: str = "", format: str = "html") -> Response:
        with connect(view.ref(store)) as conn:
            run_id = view.default_run(conn, run)
            rows = lineage.reflections(conn, run_id)
        if format == "jsonl":
            return view.jsonl(rows, "reflections.jsonl")
        return view.page("reflections.html", store=store, run_id=run_id, rows=rows)

    @app.get("/s/{store}/memory/{item_id:path}")
    def memory(store: str, item_id: str) -> Response:
        with connect(view.ref(store)) as conn:
            item = lineage.memory_item(conn, item_id)
        return view.page("memory.html", store=store, item=item, run_id=item["run_id"] or "")

    @app.get("/s/{store}/teacher")
    def teacher(store: str, run: str = "", status: str = "", format: str = "html") -> Response:
        """Counts, every proposal (``status`` filters them) and the accepted tasks; ``format=jsonl``
        downloads the accepted tasks, ``format=proposals-jsonl`` the (filtered) proposals."""
        with connect(view.ref(store)) as conn:
            run_id = view.default_run(conn, run)
            q.run(conn, run_id)
            info = lineage.teacher(conn, run_id)
        everything = info["proposals"]
        shown = [p for p in everything if not status or p.get("status") == status]
        if format == "jsonl":
            return view.jsonl(info["accepted"], "teacher.jsonl")
        if format == "proposals-jsonl":
            return view.jsonl(shown, "teacher-proposals.jsonl")
        accepted = {t["id"]: t for t in info["accepted"]}
        iterations: dict[int, list[dict[str, Any]]] = {}
        for p in shown:
            p["accepted_task"] = accepted.get(p["task_id"]) if p.get("task_id") else None
            iterations.setdefault(p["iteration"], []).append(p)
        statuses = sorted({p.get("status") or "" for p in everything})
        return view.page("teacher.html", store=store, run_id=run_id, info=info, names=lineage.TEACHER_COUNTS,
                         iterations=iterations, statuses=statuses, shown_status=status, n_proposals=len(everything))
