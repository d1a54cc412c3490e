"""``selfgym serve``: any registered env as an OpenEnv server (HTTP + WebSocket sessions).

Beside the runner in the layers: it imports the core and the envs, nothing imports it but the CLI.
Needs the ``serve`` extra (FastAPI, uvicorn).
"""

from __future__ import annotations

from selfgym.serve.app import ServeConfig, create_app
from selfgym.serve.server import BackgroundServer, serve

__all__ = ["BackgroundServer", "ServeConfig", "create_app", "serve"]
