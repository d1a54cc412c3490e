"""The viewer's FastAPI app: server-rendered pages over read-only run stores.

``create_app(run_dirs)`` builds the app; ``serve`` runs it with uvicorn. Every id in a URL is a deep
link (``/s/<store>/trajectory/<id>``, ``/s/<store>/task?id=...``); ids that may hold a slash (run
and task ids) travel as query parameters. An unknown id, a missing or damaged store and a store of
another schema version answer an HTML page with a 4xx status, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from selfgym.view import queries as q
from selfgym.view.mirror import mirror
from selfgym.view.plot import line_plot
from selfgym.view.source import StoreRef, ViewError, connect, discover, lease_held

__all__ = ["View", "create_app", "serve"]

HERE = Path(__file__).parent


def _ts(value: float | None) -> str:
    return "-" if value is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value))


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


class View:
    """The stores being shown and the page renderer, shared by the routes."""

    def __init__(self, run_dirs: Iterable[str | Path]) -> None:
        refs, self.groups = discover(list(run_dirs))
        self.refs = {ref.name: ref for ref in refs}
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(),
                               trim_blocks=True, lstrip_blocks=True)
        self.env.filters.update(ts=_ts, num=_num, tojson_pretty=lambda v: json.dumps(v, indent=2, default=str))
        self.env.globals.update(urlencode=urlencode, stores=list(self.refs), groups=self.groups)

    def ref(self, store: str) -> StoreRef:
        if store not in self.refs:
            raise ViewError(404, "Unknown store", f"no store named {store!r}; this viewer shows: "
                            f"{', '.join(self.refs) or 'none'}.")
        return self.refs[store]

    def page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(template).render(**context), status_code=status)

    def error(self, status: int, title: str, message: str) -> HTMLResponse:
        return self.page("error.html", status=status, title=title, message=message)

    @staticmethod
    def jsonl(rows: Iterable[dict[str, Any]] | Iterator[str], filename: str) -> StreamingResponse:
        lines = (r if isinstance(r, str) else json.dumps(r, default=str) + "\n" for r in rows)
        return StreamingResponse(lines, media_type="application/x-ndjson",
                                 headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    def warm(self) -> None:
        """Build the mirror of every readable store (``selfgym.view.mirror``)."""
        for ref in self.refs.values():
            try:
                with connect(ref) as conn, mirror(conn):
                    pass
            except ViewError:
                continue  # shown as an error page when asked for

    def default_run(self, conn: Any, run_id: str | None) -> str:
        """The run a page shows: the one asked for, else the store's gym-loop run, else its newest."""
        if run_id:
            return run_id
        row = conn.execute("SELECT id FROM runs ORDER BY kind='loop' DESC, created_at DESC LIMIT 1").fetchone()
        if row is None:
            raise ViewError(404, "No run", "this store holds no run yet.")
        return str(row[0])


def status(ref: StoreRef, run: dict[str, Any]) -> str:
    """running (a live process holds its lease), finished, stopped or stored (not a loop run)."""
    if lease_held(ref.run_dir, run["id"]):
        return "running"
    if run["kind"] != "loop":
        return "stored"
    done, total = run["iterations_done"], run["iterations"]
    return "finished" if total is not None and done >= total else "stopped"


def timeline(conn: Any, run_id: str) -> tuple[list[dict[str, Any]], list[str], str]:
    """Rows per iteration (train success, held-out with CI, tokens and wall time per stage), the
    stage columns, and the SVG plot."""
    metrics = q.iterations(conn, run_id)
    evals = {e["iteration"]: e for e in q.run_evals(conn, run_id) if e["iteration"] is not None}
    stages = sorted({k for m in metrics.values() for k in m if k.startswith(("tokens/", "time/"))})
    rows: list[dict[str, Any]] = []
    for it in sorted(set(metrics) | set(evals)):
        m, e = metrics.get(it, {}), evals.get(it)
        rows.append({"iteration": it, "train_success": m.get("train/success"), "episodes": m.get("train/episodes"),
                     "heldout": e["metrics"].get("success_rate") if e else None,
                     "ci95": e["metrics"].get("ci95") if e else None, "eval_id": e["id"] if e else None,
                     "stages": {k: m.get(k) for k in stages}})
    train = [(r["iteration"], r["train_success"]) for r in rows if r["train_success"] is not None]
    held = [(r["iteration"], r["heldout"]) for r in rows if r["heldout"] is not None]
    band = [(r["iteration"], r["ci95"][0], r["ci95"][1]) for r in rows if r["ci95"]]
    svg = line_plot([("train success", train, []), ("held-out (95% CI)", held, band)],
                    title="Success rate per iteration", y_range=(0.0, 1.0))
    return rows, stages, svg


def live(ref: StoreRef, conn: Any, run_id: str) -> dict[str, Any]:
    """The figures a run page refreshes while the run is written."""
    run = q.run(conn, run_id)
    last = run["last_eval"]
    return {"status": status(ref, run), "iterations_done": run["iterations_done"],
            "n_trajectories": run["n_trajectories"], "n_success": run["n_success"],
            "last_heldout": _num(last["metrics"].get("success_rate")) if last else "-",
            "last_write": _ts(run["last_write"])}


def create_app(run_dirs: Iterable[str | Path]) -> FastAPI:
    """The viewer over ``run_dirs`` (run directories, ``store.sqlite`` files, or folders of run
    directories such as an ablation's: ``selfgym.view.source.discover``), read-only."""
    from selfgym.view import routes_ablation, routes_memory, routes_runs, routes_trajectories

    view = View(run_dirs)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # copy each store's small columns at start, not on the first page that needs them
        threading.Thread(target=view.warm, name="selfgym-view-warm", daemon=True).start()
        yield

    app = FastAPI(title="selfgym view", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.view = view
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _error_pages(app, view)
    routes_runs.register(app, view)
    routes_trajectories.register(app, view)
    routes_memory.register(app, view)
    routes_ablation.register(app, view)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        return JSONResponse({"ok": True, "stores": list(view.refs)})

    return app


def _error_pages(app: FastAPI, view: View) -> None:
    """Every failure answers an HTML page: 4xx for what the request or the store got wrong."""

    @app.exception_handler(ViewError)
    async def view_error(request: Request, exc: ViewError) -> Response:
        return view.error(exc.status, exc.title, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return view.error(exc.status_code, "Not found" if exc.status_code == 404 else "Bad request", str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def bad_params(request: Request, exc: RequestValidationError) -> Response:
        shown = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
        return view.error(400, "Bad request", f"this page's parameters are wrong: {shown}.")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:  # a bug: logged by uvicorn, not shown
        return view.error(500, "Unexpected error", f"the viewer failed on this page ({type(exc).__name__}); the "
                          "server's log has the details.")


def serve(run_dirs: Iterable[str | Path], *, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the viewer with uvicorn until interrupted, registered (``selfgym.view.registry``) meanwhile."""
    import uvicorn

    from selfgym.view.registry import register_viewer

    app = create_app(run_dirs)
    view: View = app.state.view
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
    entry = register_viewer(f"http://{shown}:{port}", {name: ref.path for name, ref in view.refs.items()})
    if threading.current_thread() is threading.main_thread():
        # uvicorn stops on SIGTERM, then raises it again under the handler it found: make that an
        # exit that runs the ``finally`` below (the default handler would kill the process first)
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        entry.unlink(missing_ok=True)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)
