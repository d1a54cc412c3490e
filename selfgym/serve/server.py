"""Run the env server: in the foreground (``selfgym serve``) or on a thread (tests, benchmarks)."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from selfgym.serve.app import ServeConfig, create_app

__all__ = ["BackgroundServer", "serve"]


def _uvicorn_config(config: ServeConfig, **overrides: Any) -> uvicorn.Config:
    options: dict[str, Any] = {"log_level": "warning", "timeout_graceful_shutdown": config.shutdown_timeout,
                               "ws_ping_interval": 20.0, "ws_ping_timeout": 20.0, **overrides}
    return uvicorn.Config(create_app(config), host=config.host, port=config.port, **options)


def serve(config: ServeConfig, **uvicorn_options: Any) -> None:
    """Serve until SIGINT/SIGTERM; every session's env is closed on the way out."""
    uvicorn.Server(_uvicorn_config(config, **uvicorn_options)).run()


class BackgroundServer:
    """The server on a daemon thread; ``with BackgroundServer(config) as server: server.url``.

    ``port=0`` picks a free port; ``url`` is the ``ws://`` address to give ``RemoteEnv``.
    """

    def __init__(self, config: ServeConfig, **uvicorn_options: Any) -> None:
        self.server = uvicorn.Server(_uvicorn_config(config, **uvicorn_options))
        self.app = self.server.config.app
        self.thread = threading.Thread(target=self.server.run, name="selfgym-serve", daemon=True)
        self.host = config.host
        self.port = config.port

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the env server did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Shut down as SIGTERM would: sessions closed, envs closed."""
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
