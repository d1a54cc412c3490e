"""The local web server the env starts on loopback: bundled sites, MiniWoB++ pages, app state.

Each episode opens a *session* (a token the browser sends as the ``selfgym_session`` cookie). A
site page is served with the session's data inlined (the catalog, the forum threads, ...), and the
apps keep their state on the server through a tiny JSON API, so a task's success check reads what
the app recorded (the order placed, the booking made), never what the agent claims::

    GET  /api/state          -> the session's state
    PUT  /api/state/<key>    -> set state[key] to the JSON body
    POST /api/state/<key>    -> append the JSON body to the list state[key]
"""

from __future__ import annotations

import copy
import importlib.resources
import importlib.util
import json
import mimetypes
import re
import secrets
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["SESSION_COOKIE", "SITES", "SiteServer", "miniwob_html_dir"]

SESSION_COOKIE = "selfgym_session"
SITES = {"shop": "Northwind Goods", "forms": "Harbor View Hotel", "forum": "Tinkerers Forum"}  # path: title
_DATA_MARK = "<!-- site-data -->"
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
_MAX_BODY = 1 << 20


def miniwob_html_dir() -> Path | None:
    """The ``html/`` folder of the installed ``miniwob`` package (found without importing it)."""
    spec = importlib.util.find_spec("miniwob")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "html"
    return path if path.is_dir() else None


def _load_site_files() -> dict[str, bytes]:
    files = importlib.resources.files("selfgym.envs.web.sites")
    return {f.name: f.read_bytes() for f in files.iterdir() if f.name.endswith((".html", ".js", ".css"))}


@dataclass
class _Session:
    data: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)


class SiteServer:
    """A threaded HTTP server on ``127.0.0.1`` (free port), serving until ``close``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self.site_files = _load_site_files()
        self.miniwob_dir = miniwob_html_dir()
        handler = type("Handler", (_Handler,), {"site": self})
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self.base_url = f"http://{host}:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="selfgym-sites", daemon=True)
        self._thread.start()

    def open_session(self, data: dict[str, Any] | None = None) -> str:
        """Start an episode's session with the site ``data``; returns its cookie value."""
        token = secrets.token_hex(12)
        with self._lock:
            self._sessions[token] = _Session(data=copy.deepcopy(data or {}))
        return token

    def state(self, token: str) -> dict[str, Any]:
        """A copy of what the apps recorded in this session."""
        with self._lock:
            session = self._sessions.get(token)
            return copy.deepcopy(session.state) if session else {}

    def close_session(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(token, None)

    def session(self, token: str | None) -> _Session | None:
        with self._lock:
            return self._sessions.get(token) if token else None

    def update(self, token: str | None, key: str, value: Any, *, append: bool) -> dict[str, Any] | None:
        with self._lock:
            session = self._sessions.get(token) if token else None
            if session is None:
                return None
            if append:
                items = session.state.setdefault(key, [])
                if not isinstance(items, list):
                    raise ValueError(f"state[{key!r}] is not a list")
                items.append(value)
            else:
                session.state[key] = value
            return copy.deepcopy(session.state)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    site: SiteServer  # set on the subclass SiteServer makes

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # quiet: the env's observations carry what matters

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser closed the connection (a page closed mid-request)

    # ----------------------------------------------------------------- routing
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = unquote(urlsplit(self.path).path)
        if path == "/":
            return self._send(HTTPStatus.OK, _index_page(), "text/html")
        if path == "/favicon.ico":
            return self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        if path == "/api/state":
            session = self._session()
            if session is None:
                return self._error(HTTPStatus.FORBIDDEN, "no episode session (cookie selfgym_session)")
            return self._json(HTTPStatus.OK, self.site.state(self._token() or ""))
        name = path.strip("/")
        if name in SITES:
            if not path.endswith("/"):
                return self._redirect(f"/{name}/")
            return self._send(HTTPStatus.OK, self._site_page(name), "text/html")
        if path.startswith("/static/"):
            body = self.site.site_files.get(path[len("/static/"):])
            if body is not None:
                return self._send(HTTPStatus.OK, body, _mime(path), cache=True)
        if path.startswith("/miniwob/") and self.site.miniwob_dir is not None:
            return self._file(self.site.miniwob_dir, path[len("/miniwob/"):])
        return self._error(HTTPStatus.NOT_FOUND, f"no page at {path}")

    def do_PUT(self) -> None:  # noqa: N802
        self._write_state(append=False)

    def do_POST(self) -> None:  # noqa: N802
        self._write_state(append=True)

    # ----------------------------------------------------------------- helpers
    def _write_state(self, *, append: bool) -> None:
        path = urlsplit(self.path).path
        key = path[len("/api/state/"):] if path.startswith("/api/state/") else ""
        length = int(self.headers.get("Content-Length") or 0)
        if not _KEY.match(key):
            return self._error(HTTPStatus.NOT_FOUND, "write to /api/state/<key>, key in [a-z0-9_]")
        if length > _MAX_BODY:
            return self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body over 1 MiB")
        try:
            value = json.loads(self.rfile.read(length) or b"null")
            state = self.site.update(self._token(), key, value, append=append)
        except ValueError as exc:
            return self._error(HTTPStatus.BAD_REQUEST, str(exc))
        if state is None:
            return self._error(HTTPStatus.FORBIDDEN, "no episode session (cookie selfgym_session)")
        self._json(HTTPStatus.OK, state)

    def _token(self) -> str | None:
        cookie = SimpleCookie(self.headers.get("Cookie") or "")
        return cookie[SESSION_COOKIE].value if SESSION_COOKIE in cookie else None

    def _session(self) -> _Session | None:
        return self.site.session(self._token())

    def _site_page(self, name: str) -> bytes:
        token = self._token()
        session = self.site.session(token)
        data = session.data if session is not None else {}
        state = self.site.state(token) if token else {}
        script = f"<script>window.SITE_DATA = {_js_json(data)};\nwindow.SITE_STATE = {_js_json(state)};</script>"
        files = self.site.site_files
        page = files["page.html"].decode()
        # Styles and scripts inline: a page is one request. The browser's HTTP cache is off in the
        # env (Playwright's routing, which confines it, disables it), so files linked from the page
        # would be fetched again at every load.
        for slot, file in (("common.css", "common.css"), ("common.js", "common.js"), ("site.js", f"{name}.js")):
            page = page.replace("{{" + slot + "}}", files[file].decode(), 1)
        page = page.replace("{{title}}", SITES[name], 1).replace(_DATA_MARK, script, 1)
        return page.encode()

    def _file(self, root: Path, relative: str) -> None:
        target = (root / relative).resolve()
        if not target.is_relative_to(root.resolve()) or not target.is_file():
            return self._error(HTTPStatus.NOT_FOUND, f"no file {relative}")
        self._send(HTTPStatus.OK, target.read_bytes(), _mime(target.name), cache=True)

    def _redirect(self, location: str) -> None:
        self.send_response(HTTPStatus.MOVED_PERMANENTLY)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _json(self, status: HTTPStatus, value: Any) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json(status, {"error": message})

    def _send(self, status: HTTPStatus, body: bytes, mime: str, *, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{mime}; charset=utf-8" if mime.startswith("text/") else mime)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _js_json(value: Any) -> str:
    """JSON that is safe inside a <script> element (no ``</script>``, no ``<!--``)."""
    return json.dumps(value).replace("<", "\\u003c")


def _mime(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _index_page() -> bytes:
    links = "".join(f'<li><a href="/{s}/">{s}</a></li>' for s in SITES)
    return f"<!doctype html><title>selfgym sites</title><h1>selfgym sites</h1><ul>{links}</ul>".encode()
