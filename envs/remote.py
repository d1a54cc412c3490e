"""``RemoteEnv``: an env served by ``selfgym serve`` (or any OpenEnv server), used like a local one.

``selfgym.make("selfgym/Code-v0", remote="ws://host:8000")`` returns one. Its ``reset``/``step``
and ``info["task"]`` behave as the local env's, so the rollout engine and evaluation use it
unchanged; its ``task_source`` asks the server's ``/tasks`` endpoints.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import gymnasium
import numpy as np
from gymnasium.envs.registration import EnvSpec
from gymnasium.error import ResetNeeded

from selfgym.envs.base import ACTION_SPACE, OBSERVATION_SPACE
from selfgym.errors import ConfigError, InfrastructureError, UnknownTaskError
from selfgym.types import Split, Task

__all__ = ["ConnectionLost", "RemoteEnv", "RemoteEnvError", "RemoteTaskSource"]

_SESSION_ENDED = {"CAPACITY_REACHED", "FACTORY_ERROR", "STEP_TIMEOUT", "SESSION_TIMEOUT", "SESSION_ERROR"}


class RemoteEnvError(InfrastructureError):
    """The server could not be reached, refused the session, or lost it: the episode is aborted."""


class ConnectionLost(RemoteEnvError):
    """The connection (and with it the server's session) is gone."""


def _urls(url: str) -> tuple[str, str]:
    """(``ws://host:port``, ``http://host:port``) from either form (a trailing ``/ws`` is dropped)."""
    parts = urllib.parse.urlsplit(url.rstrip("/"))
    if parts.scheme not in ("ws", "wss", "http", "https"):
        raise ConfigError(f"remote= takes a ws://, wss://, http:// or https:// address, got {url!r}")
    path = parts.path[:-3] if parts.path.endswith("/ws") else parts.path
    secure = parts.scheme in ("wss", "https")
    base = f"{parts.netloc}{path}"
    return f"{'wss' if secure else 'ws'}://{base}", f"{'https' if secure else 'http'}://{base}"


class RemoteTaskSource:
    """The server env's task source, through ``GET /tasks``, ``GET /tasks/{id}``, ``POST /tasks/sample``.

    ``sample`` sends the generator's state and takes the advanced state back, so it draws exactly the
    tasks the local source would draw from the same generator.
    """

    def __init__(self, http_url: str, timeout: float = 60.0) -> None:
        self.http_url, self.timeout = http_url, timeout
        self._name: str | None = None

    @property
    def name(self) -> str:
        if self._name is None:
            self._name = str(self._request("GET", "/tasks?limit=0")["source"])
        return self._name

    def tasks(self, split: Split, *, limit: int | None = None) -> Iterator[Task]:
        query = urllib.parse.urlencode({"split": split, **({} if limit is None else {"limit": limit})})
        answer = self._request("GET", f"/tasks?{query}")
        self._name = str(answer["source"])
        return iter([Task.from_dict(t) for t in answer["tasks"]])

    def get(self, task_id: str) -> Task:
        try:
            return Task.from_dict(self._request("GET", f"/tasks/{urllib.parse.quote(task_id)}"))
        except KeyError as exc:
            raise KeyError(task_id) from exc

    def sample(self, rng: np.random.Generator, *, split: Split = "train", difficulty: float | None = None) -> Task:
        answer = self._request("POST", "/tasks/sample", {"rng_state": rng.bit_generator.state, "split": split,
                                                         "difficulty": difficulty})
        rng.bit_generator.state = answer["rng_state"]
        return Task.from_dict(answer["task"])

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.http_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise KeyError(path) from exc
            raise RemoteEnvError(f"{method} {self.http_url}{path} answered {exc.code}: {exc.read()[:300]!r}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise RemoteEnvError(f"cannot reach the env server at {self.http_url}: {exc}") from exc


class RemoteEnv(gymnasium.Env[str, str]):
    """A text env that lives on an env server, played over one WebSocket session.

    Observation:
        The server env's observation text (for a non-selfgym OpenEnv server: its ``text`` field, or
        the observation as JSON).

    Actions:
        Text, sent as ``{"message": text}`` (or the server's one string action field, from ``/schema``).

    Rewards:
        The server env's.

    Episode End:
        As the server env's (its ``TimeLimit`` runs there). If the connection or the server is lost
        mid-episode, ``step`` raises ``RemoteEnvError`` (an ``InfrastructureError``), so the rollout
        engine stores the episode as aborted; the next ``reset`` reconnects.

    Arguments:
        url: the server (``ws://host:port`` or ``http://host:port``).
        env_id: the env the server must serve (checked against its ``/metadata`` when it names a
            registered id); ``None`` accepts whatever it serves.
        connect_timeout: seconds to open a connection. message_timeout: seconds to wait for a reply
            (longer than the server's step timeout). reconnect_attempts: tries at each (re)connection.

    Version History:
        v0: initial version.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi", "human"], "render_fps": 4}
    observation_space = OBSERVATION_SPACE
    action_space = ACTION_SPACE

    def __init__(self, url: str, env_id: str | None = None, *, connect_timeout: float = 10.0,
                 message_timeout: float = 900.0, reconnect_attempts: int = 3, render_mode: str | None = None) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.url, self.http_url = _urls(url)
        self.connect_timeout, self.message_timeout = connect_timeout, message_timeout
        self.reconnect_attempts = max(1, reconnect_attempts)
        self.render_mode = render_mode
        self.task_source = RemoteTaskSource(self.http_url, timeout=connect_timeout + 50.0)
        self.split: Split = "train"
        self.difficulty: float | None = None
        self.task: Task | None = None
        self.transcript: list[tuple[str, str]] = []
        self._ws: Any = None
        served = str(self.task_source._request("GET", "/metadata").get("name", ""))
        if env_id is not None and "/" in served and env_id not in (served, served.split("/", 1)[1]):
            raise ConfigError(f"the server at {self.url} serves {served}, not {env_id}")
        self.action_field = self._action_field()
        self.spec = EnvSpec(id=served if "/" in served else (env_id or served or "remote"),
                            entry_point="selfgym.envs.remote:RemoteEnv", kwargs={"url": url})

    # ----------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        if isinstance(options.get("task"), Task):
            options["task"] = options["task"].to_dict()
        data = {"seed": seed, "options": options} if seed is not None else {"options": options}
        last: RemoteEnvError | None = None
        for attempt in range(self.reconnect_attempts):
            try:
                reply = self._exchange({"type": "reset", "data": data})
                break
            except RemoteEnvError as exc:  # a dropped or refused session: a fresh one may work
                last = exc
                time.sleep(min(2.0, 0.2 * 2**attempt))
        else:
            assert last is not None
            raise last
        observation, _, _, _, info = self._outcome(reply)
        self.task = info.get("task") if isinstance(info.get("task"), Task) else None
        self.transcript = [("task", observation)]
        return observation, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if not isinstance(action, str):
            raise TypeError(f"actions are str, got {type(action).__name__}")
        if self._ws is None:
            raise ResetNeeded("call reset() before step(): no episode is open on the server")
        self.transcript.append(("agent", action))
        try:
            reply = self._exchange({"type": "step", "data": {self.action_field: action}})
        except ConnectionLost as exc:
            raise RemoteEnvError(f"the episode was lost with its session on {self.url}: {exc}") from exc
        outcome = self._outcome(reply)
        self.transcript.append(("env", outcome[0]))
        return outcome

    def render(self) -> str | None:
        labels = {"task": "TASK", "agent": "AGENT", "env": "ENV"}
        text = "\n".join(f"[{labels[who]}] {said}" for who, said in self.transcript) + "\n"
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        if self._ws is not None:
            try:
                self._ws.send(json.dumps({"type": "close"}))
                self._ws.close()
            except Exception:  # noqa: BLE001 - closing a dead connection is not an error
                pass
            self._ws = None
        super().close()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (for process pools and Ray workers): the copy opens its own session at ``reset``."""
        state = dict(self.__dict__)
        state["_ws"] = None
        return state

    def oracle_action(self) -> str:
        raise NotImplementedError("a remote env has no oracle here; play the oracle on the server's side")

    # ----------------------------------------------------------------- the connection
    def _connect(self) -> Any:
        if self._ws is not None:
            return self._ws
        try:
            from websockets.sync.client import connect
        except ImportError as exc:
            raise ConfigError("RemoteEnv needs the websockets package: pip install 'selfgym[serve]'") from exc
        error: Exception | None = None
        for attempt in range(self.reconnect_attempts):
            try:
                self._ws = connect(f"{self.url}/ws", open_timeout=self.connect_timeout, compression=None,
                                   max_size=64 * 2**20, proxy=None, legacy=True)
                return self._ws
            except Exception as exc:  # noqa: BLE001 - refused, timed out, or a failed handshake
                error = exc
                time.sleep(min(2.0, 0.2 * 2**attempt))
        raise RemoteEnvError(f"cannot connect to the env server at {self.url}: {error}")

    def _drop(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close()
            except Exception:  # noqa: BLE001
                pass

    def _exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        ws = self._connect()
        try:
            ws.send(json.dumps(message))
            reply = json.loads(ws.recv(timeout=self.message_timeout))
        except TimeoutError as exc:
            self._drop()
            raise ConnectionLost(f"no reply from {self.url} within {self.message_timeout:g} s") from exc
        except Exception as exc:  # noqa: BLE001 - websockets' ConnectionClosed and socket errors alike
            self._drop()
            raise ConnectionLost(f"connection to {self.url} lost ({type(exc).__name__}: {exc})") from exc
        if reply.get("type") != "error":
            return reply
        error = reply.get("data") or {}
        code, text = error.get("code", "UNKNOWN"), error.get("message", "unknown error")
        if code in _SESSION_ENDED:
            self._drop()
            raise ConnectionLost(f"{text} ({code})")
        if code == "INFRASTRUCTURE_ERROR":
            raise RemoteEnvError(text)
        if code == "UNKNOWN_TASK":
            raise UnknownTaskError(text)
        if code == "RESET_NEEDED":
            raise ResetNeeded(text)
        if code in ("VALIDATION_ERROR", "INVALID_JSON", "UNKNOWN_TYPE"):
            raise ValueError(f"the env server refused the message: {text} ({code})")
        raise RuntimeError(f"the remote env failed: {text} ({code})")

    def _outcome(self, reply: dict[str, Any]) -> tuple[str, float, bool, bool, dict[str, Any]]:
        data = reply.get("data") or {}
        observation = dict(data.get("observation") or {})
        info = dict(observation.pop("metadata", None) or {})
        text = observation.get("text")
        if not isinstance(text, str):
            text = json.dumps(observation, sort_keys=True)
        done = bool(data.get("done", False))
        terminated = bool(info.pop("terminated", done))
        truncated = bool(info.pop("truncated", False))
        if isinstance(info.get("task"), dict):
            info["task"] = Task.from_dict(info["task"])
        reward = data.get("reward")
        return text, 0.0 if reward is None else float(reward), terminated, truncated, info

    def _action_field(self) -> str:
        """``message`` (selfgym's and OpenEnv's text envs), else the server's one required string field."""
        try:
            schema = self.task_source._request("GET", "/schema").get("action", {})
        except (RemoteEnvError, KeyError):
            return "message"
        properties = schema.get("properties", {})
        if "message" in properties:
            return "message"
        strings = [k for k in schema.get("required", []) if properties.get(k, {}).get("type") == "string"]
        return strings[0] if len(strings) == 1 else "message"
