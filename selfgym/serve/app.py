"""The env server's FastAPI app: OpenEnv's endpoints over any registered selfgym env.

``/ws`` holds sessions (one env each) for whole episodes. ``POST /reset`` and ``POST /step`` are
stateless, as in OpenEnv: each request makes a fresh env and closes it after answering (``/step``
resets it with the request's ``seed``/``options`` first), so multi-turn episodes use ``/ws``.
``/tasks`` lets a remote client list and sample the env's tasks (a selfgym addition).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import gymnasium
import numpy as np
from fastapi import Body, FastAPI, HTTPException, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

import selfgym
from selfgym.envs.base import llm_env
from selfgym.errors import ConfigError, InfrastructureError, UnknownTaskError
from selfgym.serve.protocol import (
    EnvState,
    ErrorCode,
    TextAction,
    TextObservation,
    decode_options,
    error_message,
    json_safe,
    observation_payload,
)
from selfgym.serve.sessions import CapacityError, Session, SessionPool
from selfgym.types import new_id

__all__ = ["ServeConfig", "create_app"]

log = logging.getLogger("selfgym.serve")


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """What ``selfgym serve`` serves, and its limits."""

    env_id: str = field(metadata={"help": "registered env id (built-in or plugin), e.g. selfgym/Code-v0"})
    env_args: dict[str, Any] = field(default_factory=dict, metadata={"help": "keyword arguments of the env"})
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=8000, metadata={"help": "port to listen on (0: any free port)"})
    max_sessions: int = field(default=256, metadata={"help": "open sessions (envs) at most; more are refused"})
    idle_timeout: float = field(default=600.0, metadata={"help": "seconds without a message before a session closes"})
    step_timeout: float = field(default=300.0, metadata={"help": "seconds a reset or step may take"})
    shutdown_timeout: float = field(default=30.0, metadata={"help": "seconds to wait for busy envs at shutdown"})

    def __post_init__(self) -> None:
        for name in ("max_sessions", "idle_timeout", "step_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"ServeConfig.{name} must be > 0, got {getattr(self, name)}")


class _Catalog:
    """One env kept for task-source queries (``/tasks``), used by one thread at a time."""

    def __init__(self, make_env: Callable[[], gymnasium.Env]) -> None:
        self.make_env = make_env
        self.env: gymnasium.Env | None = None
        self.lock = threading.Lock()

    def call(self, fn: Callable[[Any], Any]) -> Any:
        with self.lock:
            if self.env is None:
                self.env = self.make_env()
            return fn(llm_env(self.env).task_source)

    def close(self) -> None:
        with self.lock:
            if self.env is not None:
                self.env.close()
                self.env = None


def create_app(config: ServeConfig) -> FastAPI:
    """The app serving ``config.env_id`` (raises ``UnknownEnvError`` for an unknown id)."""
    env_id = selfgym.registry.resolve_env_id(config.env_id)

    def make_env() -> gymnasium.Env:
        # gymnasium's passive checker breaks the first step after a reset that raised (an unknown
        # task): a session must survive that, and the checker's warnings are the author's business
        return selfgym.make(env_id, disable_env_checker=True, **config.env_args)

    pool = SessionPool(make_env, config.max_sessions)
    catalog = _Catalog(make_env)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await pool.close_all(config.shutdown_timeout)
        await asyncio.to_thread(catalog.close)

    app = FastAPI(title=f"selfgym env server: {env_id}", lifespan=lifespan)
    app.state.pool, app.state.config, app.state.env_id = pool, config, env_id

    _info_routes(app, pool, config.max_sessions, env_id)
    _play_routes(app, pool, config, env_id)
    _task_routes(app, catalog)
    return app


def _info_routes(app: FastAPI, pool: SessionPool, max_sessions: int, env_id: str) -> None:
    """What the server is: health, sessions in use, metadata and the payload schemas (OpenEnv's routes)."""
    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy"}

    @app.get("/sessions")
    async def sessions() -> dict[str, int]:
        return {"active": pool.active, "max_sessions": max_sessions}

    @app.get("/metadata")
    async def metadata() -> dict[str, Any]:
        description = next((e.description for e in selfgym.list_envs() if e.id == env_id), "")
        return {"name": env_id, "description": description, "version": selfgym.__version__,
                "author": None, "readme_content": None, "documentation_url": None}

    @app.get("/schema")
    async def schema() -> dict[str, Any]:
        return {"action": TextAction.model_json_schema(), "observation": TextObservation.model_json_schema(),
                "state": EnvState.model_json_schema()}

    @app.get("/state")
    async def state() -> dict[str, Any]:
        return EnvState(env_id=env_id).model_dump()


def _play_routes(app: FastAPI, pool: SessionPool, config: ServeConfig, env_id: str) -> None:
    """Playing: one-shot HTTP ``/reset`` and ``/step`` (a fresh env each), and WebSocket sessions on ``/ws``."""
    @app.post("/reset")
    async def reset(body: Annotated[dict[str, Any] | None, Body()] = None) -> JSONResponse:
        request = body or {}

        def play(env: gymnasium.Env) -> dict[str, Any]:
            observation, info = env.reset(seed=request.get("seed"), options=decode_options(request.get("options")))
            return observation_payload(observation, info)

        return await _one_shot(pool, config, play)

    @app.post("/step")
    async def step(request: Annotated[dict[str, Any], Body()]) -> JSONResponse:
        action = request.get("action")
        if not isinstance(action, dict) or not isinstance(action.get("message"), str):
            raise HTTPException(422, detail='"action" must be an object {"message": "<text>"}')

        def play(env: gymnasium.Env) -> dict[str, Any]:
            env.reset(seed=request.get("seed"), options=decode_options(request.get("options")))
            observation, reward, terminated, truncated, info = env.step(action["message"])
            return observation_payload(observation, info, reward=float(reward), terminated=terminated, truncated=truncated)

        return await _one_shot(pool, config, play)

    @app.websocket("/ws")
    async def websocket(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            session = await pool.open(config.step_timeout)
        except CapacityError as exc:
            await _refuse(websocket, error_message(ErrorCode.CAPACITY_REACHED, str(exc), active_sessions=exc.active,
                                                   max_sessions=exc.max_sessions), code=1013)
            return
        except Exception as exc:  # noqa: BLE001 - the client is told; the server goes on
            log.exception("could not make %s for a session", env_id)
            await _refuse(websocket, error_message(ErrorCode.FACTORY_ERROR, f"could not make {env_id}: {exc!r}",
                                                   factory_name=env_id), code=1011)
            return
        try:
            await _serve_session(websocket, session, config, env_id)
        except WebSocketDisconnect:
            pass
        finally:
            pool.release(session)
            with contextlib.suppress(Exception):
                await websocket.close()


def _task_routes(app: FastAPI, catalog: _Catalog) -> None:
    """The env's tasks, for a remote client's task source: listing, one task by id, sampling."""
    @app.get("/tasks")
    async def tasks(split: str = "heldout", limit: int | None = None) -> dict[str, Any]:
        def listing(source: Any) -> dict[str, Any]:
            found = [] if limit == 0 else [t.to_dict() for t in source.tasks(split, limit=limit)]
            return {"source": getattr(source, "name", type(source).__name__), "tasks": found}

        return await asyncio.to_thread(catalog.call, listing)

    @app.get("/tasks/{task_id:path}")
    async def task(task_id: str) -> dict[str, Any]:
        try:
            return await asyncio.to_thread(catalog.call, lambda source: source.get(task_id).to_dict())
        except KeyError as exc:
            raise HTTPException(404, detail=f"no task {task_id!r}") from exc

    @app.post("/tasks/sample")
    async def sample(request: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        """Sample as the client's generator would: its state goes in, the advanced state comes back."""

        def draw(source: Any) -> dict[str, Any]:
            rng = np.random.default_rng()
            rng.bit_generator.state = request["rng_state"]
            chosen = source.sample(rng, split=request.get("split", "train"), difficulty=request.get("difficulty"))
            return {"task": chosen.to_dict(), "rng_state": json_safe(rng.bit_generator.state)}

        return await asyncio.to_thread(catalog.call, draw)


async def _refuse(websocket: WebSocket, message: str, *, code: int) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_text(message)
        await websocket.close(code=code)


async def _one_shot(pool: SessionPool, config: ServeConfig, play: Callable[[gymnasium.Env], Any]) -> JSONResponse:
    """A stateless request: a fresh env (counted as a session), ``play`` on its thread, then closed."""
    try:
        session = await pool.open(config.step_timeout)
    except CapacityError as exc:
        return JSONResponse({"detail": str(exc), "code": ErrorCode.CAPACITY_REACHED}, status_code=503,
                            headers={"Retry-After": "1"})
    try:
        return JSONResponse(await session.run(lambda: play(_env(session)), timeout=config.step_timeout))
    except TimeoutError:
        return JSONResponse({"detail": f"took more than {config.step_timeout} s", "code": ErrorCode.STEP_TIMEOUT},
                            status_code=504)
    except (ValueError, TypeError, KeyError) as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    except InfrastructureError as exc:
        return JSONResponse({"detail": f"{type(exc).__name__}: {exc}", "code": ErrorCode.INFRASTRUCTURE_ERROR},
                            status_code=503)
    finally:
        pool.release(session)


def _env(session: Session) -> gymnasium.Env:
    assert session.env is not None, "the session's env is made before it is used"
    return session.env


async def _serve_session(websocket: WebSocket, session: Session, config: ServeConfig, env_id: str) -> None:
    """Answer one session's messages in order until it closes, times out or its env hangs."""
    while True:
        try:
            async with asyncio.timeout(config.idle_timeout):  # no extra task per message, unlike wait_for
                raw = await websocket.receive_text()
        except TimeoutError:
            await websocket.send_text(error_message(
                ErrorCode.SESSION_TIMEOUT, f"no message for {config.idle_timeout:g} s; the session is closed"))
            return
        try:
            message = json.loads(raw)
            if not isinstance(message, dict):
                raise ValueError("a message is a JSON object")
        except ValueError as exc:
            await websocket.send_text(error_message(ErrorCode.INVALID_JSON, f"Invalid JSON: {exc}"))
            continue
        kind = message.get("type")
        if kind == "close":
            return
        try:
            reply = await _answer(session, kind, message.get("data"), config, env_id)
        except TimeoutError:
            await websocket.send_text(error_message(
                ErrorCode.STEP_TIMEOUT, f"{kind} took more than {config.step_timeout:g} s; the session is closed"))
            return
        await websocket.send_text(reply)


async def _answer(session: Session, kind: Any, data: Any, config: ServeConfig, env_id: str) -> str:
    """The reply to one message (an error message for the session's own errors)."""
    if kind == "state":
        state = EnvState(episode_id=session.episode_id, step_count=session.step_count, env_id=env_id,
                         task_id=session.task_id)
        return json.dumps({"type": "state", "data": state.model_dump()})
    if kind not in ("reset", "step"):
        return error_message(ErrorCode.UNKNOWN_TYPE, f"Unknown message type: {kind}")
    try:
        if kind == "reset":
            payload = await _reset(session, data if data is not None else {}, config)
        else:
            payload = await _step(session, data, config)
    except TimeoutError:
        raise
    except _BadMessage as exc:
        return error_message(ErrorCode.VALIDATION_ERROR, str(exc))
    except InfrastructureError as exc:
        return error_message(ErrorCode.INFRASTRUCTURE_ERROR, f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__)
    except UnknownTaskError as exc:
        return error_message(ErrorCode.UNKNOWN_TASK, str(exc))
    except gymnasium.error.ResetNeeded as exc:
        return error_message(ErrorCode.RESET_NEEDED, str(exc))
    except Exception as exc:  # noqa: BLE001 - one session's env bug is that session's error
        log.exception("session %s: %s raised in %s", session.id[:8], env_id, kind)
        return error_message(ErrorCode.EXECUTION_ERROR, f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__)
    return json.dumps({"type": "observation", "data": payload})


class _BadMessage(ValueError):
    """The client sent a message the protocol does not allow."""


async def _reset(session: Session, data: Any, config: ServeConfig) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _BadMessage("reset data must be an object {seed, episode_id, options}")
    seed = data.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise _BadMessage(f"seed must be a non-negative integer, got {seed!r}")
    try:
        options = decode_options(data.get("options"))
    except (ValueError, TypeError) as exc:
        raise _BadMessage(str(exc)) from exc

    def play() -> dict[str, Any]:
        assert session.env is not None
        observation, info = session.env.reset(seed=seed, options=options)
        return observation_payload(observation, info)

    payload = await session.run(play, timeout=config.step_timeout)
    session.episode_id = str(data.get("episode_id") or new_id("ep-"))
    session.task_id = payload["observation"]["metadata"].get("task", {}).get("id")
    session.step_count = 0
    return payload


async def _step(session: Session, data: Any, config: ServeConfig) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("message"), str):
        raise _BadMessage('step data must be an action object {"message": "<text>"}')
    if session.episode_id is None:
        raise gymnasium.error.ResetNeeded("call reset before step: this session has no episode yet")
    action = data["message"]

    def play() -> dict[str, Any]:
        assert session.env is not None
        observation, reward, terminated, truncated, info = session.env.step(action)
        return observation_payload(observation, info, reward=float(reward), terminated=terminated, truncated=truncated)

    payload = await session.run(play, timeout=config.step_timeout)
    session.step_count += 1
    return payload
