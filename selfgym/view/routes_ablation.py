"""The ablation page: run directories side by side in one folder (``selfgym ablate``'s variants,
``bench/methods.py``'s methods) compared on held-out success, against the group's reference run."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import numpy as np
from fastapi import FastAPI
from fastapi.responses import Response

from selfgym.view import lineage
from selfgym.view import queries as q
from selfgym.view.app import View, status
from selfgym.view.source import Group, ViewError, connect

__all__ = ["register", "rows"]


def _variant(view: View, store: str, variant: str) -> dict[str, Any]:
    """One variant's figures from its store, read-only (``selfgym.run.ablate.summarise_run``'s row)."""
    ref = view.ref(store)
    with connect(ref) as conn:
        run_id = view.default_run(conn, "")
        run = q.run(conn, run_id)
        metrics = q.iterations(conn, run_id)
    evals = [e for e in run["evals"] if e["iteration"] is not None]
    first, last = (evals[0], evals[-1]) if evals else (None, None)
    train = [m["train/success"] for m in metrics.values() if "train/success" in m]
    return {"variant": variant, "store": store, "run_id": run_id, "status": status(ref, run), "first": first, "last": last,
            "before": first["metrics"].get("success_rate") if first else None,
            "before_ci95": first["metrics"].get("ci95") if first else None,
            "after": last["metrics"].get("success_rate") if last else None,
            "after_ci95": last["metrics"].get("ci95") if last else None,
            "train_success": float(np.mean(train)) if train else None,
            "tokens": sum(v for m in metrics.values() for k, v in m.items() if k.startswith("tokens/")),
            "wall_s": sum(m.get("time/iteration_s", 0.0) + m.get("time/eval_s", 0.0) for m in metrics.values())}


def rows(view: View, group: Group) -> list[dict[str, Any]]:
    """Each variant's row, with the paired difference of its last held-out evaluation against the
    reference's (the group's first run) over the tasks both scored."""
    out: list[dict[str, Any]] = []
    for store, variant in zip(group.stores, group.variants, strict=True):
        try:
            out.append(_variant(view, store, variant))
        except ViewError as exc:
            out.append({"variant": variant, "store": store, "error": exc})
    ref = out[0] if out and "error" not in out[0] else None
    for row in out:
        if "error" in row or ref is None or ref["last"] is None or row["last"] is None:
            continue
        pair = lineage.paired(ref["last"], row["last"])
        row.update(vs_ref=pair["diff"], vs_ref_ci95=pair["ci95"], paired_tasks=pair["n"],
                   evals_url=f"/s/{ref['store']}/evals?" + _query(ref, row))
    return out


def _query(ref: dict[str, Any], row: dict[str, Any]) -> str:
    return urlencode({"run": ref["run_id"], "a": f"{ref['store']}:{ref['last']['id']}",
                      "b": f"{row['store']}:{row['last']['id']}"})


def register(app: FastAPI, view: View) -> None:
    @app.get("/ablation")
    def ablation(group: str = "") -> Response:
        groups = [g for g in view.groups if not group or g.name == group]
        if group and not groups:
            raise ViewError(404, "Unknown group", f"no folder of runs named {group!r}; this viewer shows: "
                            f"{', '.join(g.name for g in view.groups) or 'none'}.")
        return view.page("ablation.html", shown=[(g, rows(view, g)) for g in groups])
