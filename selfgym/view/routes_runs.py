"""Pages of runs: the index, a run's overview and timeline, its live figures, its evaluations."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from selfgym.run.report import transfer_summary
from selfgym.view import lineage
from selfgym.view import queries as q
from selfgym.view.app import View, live, status, timeline
from selfgym.view.source import ViewError, connect

__all__ = ["register"]


def _before_after(run: dict[str, Any]) -> list[dict[str, Any]]:
    """First vs last held-out evaluation, overall and per family."""
    first, last = run["first_eval"], run["last_eval"]
    if not first or first is last:
        return []
    a, b = first["metrics"], last["metrics"]
    groups = [("all", a, b)] + [(fam, a.get("by_family", {}).get(fam, {}), s) for fam, s in b.get("by_family", {}).items()]
    return [{"group": name, "before": x.get("success_rate"), "before_ci": x.get("ci95"), "after": y.get("success_rate"),
             "after_ci": y.get("ci95"), "change": y["success_rate"] - x["success_rate"]}
            for name, x, y in groups if "success_rate" in x and "success_rate" in y]


def _transfer(evals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per transfer set, ``selfgym.run.report.transfer_summary``'s row plus the ids of its first and
    last evaluation (the paired ``/evals`` page of the two)."""
    ids: dict[str, list[int]] = {}
    for e in sorted(evals, key=lambda e: (e["iteration"] if e["iteration"] is not None else -1, e["id"])):
        ids.setdefault(e["split"].removeprefix("transfer:"), []).append(e["id"])
    return [{**row, "a": ids[row["name"]][0], "b": ids[row["name"]][-1]} for row in transfer_summary(evals)]


def _pick(store: str, token: str) -> tuple[str, int]:
    """``ID`` (this store) or ``STORE:ID`` (an evaluation of another store shown, e.g. an ablation variant)."""
    name, _, number = token.rpartition(":")
    try:
        return name or store, int(number)
    except ValueError:
        raise ViewError(400, "Bad evaluation", f"an evaluation is ID or STORE:ID, got {token!r}.") from None

def _load(view: View, store: str, token: str, measure: str = "") -> dict[str, Any]:
    name, eval_id = _pick(store, token)
    with connect(view.ref(name)) as conn:
        row = {**q.eval_row(conn, eval_id), "store": name, "key": f"{name}:{eval_id}"}
    if measure == "first" and "first_attempt" in row["metrics"]:  # a transfer evaluation's first attempts
        row["metrics"] = row["metrics"]["first_attempt"]
    return row

def _choices(view: View) -> list[dict[str, Any]]:
    """Every evaluation of every readable store (the B menu: compare runs, not only iterations)."""
    out = []
    for name, ref in view.refs.items():
        try:
            with connect(ref) as conn:
                rows = conn.execute("SELECT id, run_id, iteration, split FROM eval_results ORDER BY id").fetchall()
        except ViewError:
            continue
        out += [{"key": f"{name}:{r[0]}", "label": f"{name} / {r[1]} / iteration {r[2]} ({r[3]}, #{r[0]})"}
                for r in rows]
    return out


def register(app: FastAPI, view: View) -> None:
    @app.get("/")
    def index() -> Response:
        stores: list[dict[str, Any]] = []
        for name, ref in view.refs.items():
            try:
                with connect(ref) as conn:
                    runs = q.runs(conn)
                for run in runs:
                    run["status"] = status(ref, run)
                stores.append({"name": name, "path": str(ref.path), "runs": runs, "error": None})
            except ViewError as exc:
                stores.append({"name": name, "path": str(ref.path), "runs": [], "error": exc})
        return view.page("index.html", stores=stores)

    @app.get("/s/{store}")
    def store_page(store: str) -> Response:
        ref = view.ref(store)
        with connect(ref) as conn:
            runs = q.runs(conn)
        for run in runs:
            run["status"] = status(ref, run)
        return view.page("index.html", stores=[{"name": store, "path": str(ref.path), "runs": runs, "error": None}])

    @app.get("/s/{store}/run")
    def run_page(store: str, run: str = "") -> Response:
        ref = view.ref(store)
        with connect(ref) as conn:
            run_id = view.default_run(conn, run)
            info = q.run(conn, run_id)
            rows, stages, svg = timeline(conn, run_id)
            checkpoints = q.checkpoints(conn, run_id)
            transfer = _transfer(q.run_evals(conn, run_id, transfer=True))
        info["status"] = status(ref, info)
        return view.page("run.html", store=store, run=info, rows=rows, stages=stages, svg=svg,
                         before_after=_before_after(info), checkpoints=checkpoints, run_id=run_id, transfer=transfer)

    @app.get("/s/{store}/run/live")
    def run_live(store: str, run: str = "") -> JSONResponse:
        ref = view.ref(store)
        with connect(ref) as conn:
            return JSONResponse(live(ref, conn, view.default_run(conn, run)))

    @app.get("/s/{store}/run/plot")
    def run_plot(store: str, run: str = "") -> Response:
        with connect(view.ref(store)) as conn:
            _, _, svg = timeline(conn, view.default_run(conn, run))
        return Response(svg, media_type="image/svg+xml")

    @app.get("/s/{store}/evals")
    def evals_page(store: str, run: str = "", a: str = "", b: str = "", measure: str = "",
                   format: str = "html") -> Response:
        """Held-out and transfer evaluations; ``a`` and ``b`` compared task by task (``measure=first``:
        a transfer evaluation's first-attempt outcomes instead of those within its attempts)."""
        with connect(view.ref(store)) as conn:
            run_id = view.default_run(conn, run)
            q.run(conn, run_id)
            evals = q.run_evals(conn, run_id)
            transfer = q.run_evals(conn, run_id, transfer=True)
        if not a and not b and len(evals) >= 2:
            a, b = str(evals[0]["id"]), str(evals[-1]["id"])
        ea, eb = (_load(view, store, a, measure) if a else None), (_load(view, store, b, measure) if b else None)
        pair = lineage.paired(ea, eb) if ea is not None and eb is not None else None
        if pair is not None:  # held-out tasks are not stored: link only the tasks this store has
            with connect(view.ref(store)) as conn:
                stored = lineage.stored_tasks(conn, [r["task_id"] for r in pair["rows"]])
            for row in pair["rows"]:
                row["stored"] = row["task_id"] in stored
        if format == "jsonl":
            if pair is None:
                raise ViewError(400, "Nothing to compare", "pass two evaluations: ?a=ID&b=ID (or STORE:ID).")
            return view.jsonl(pair["rows"], "evals-paired.jsonl")
        return view.page("evals.html", store=store, run_id=run_id, evals=evals + transfer, a=ea, b=eb, pair=pair,
                         options=_choices(view), measure=measure)
