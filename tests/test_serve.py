"""``selfgym serve``: OpenEnv's own client drives sessions; failures stay in their session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the env server needs the serve extra (fastapi, uvicorn)")
websockets_sync = pytest.importorskip("websockets.sync.client", reason="needs websockets (serve extra)")
generic_client = pytest.importorskip(
    "openenv.core.generic_client", reason="needs openenv-core (the openenv extra; scripts/setup.sh installs it)")

import selfgym  # noqa: E402
from selfgym.envs.guess import GuessEnv  # noqa: E402
from selfgym.errors import InfrastructureError  # noqa: E402
from selfgym.serve import BackgroundServer, ServeConfig  # noqa: E402

GenericEnvClient = generic_client.GenericEnvClient
FLAKY = "test-serve/Flaky-v0"


class FlakyEnv(GuessEnv):
    """Guess, plus actions that break it: ``crash`` (a bug), ``infra`` (a dead sandbox), ``sleep S``."""

    closed = 0

    def parse_action(self, action: str) -> Any:
        if action == "crash":
            raise RuntimeError("boom")
        if action == "infra":
            raise InfrastructureError("the sandbox died")
        if action.startswith("sleep "):
            time.sleep(float(action.split()[1]))
        return super().parse_action(action.removeprefix("sleep "))

    def close(self) -> None:
        type(self).closed += 1
        super().close()


if FLAKY not in {e.id for e in selfgym.list_envs()}:
    selfgym.register_env(FLAKY, FlakyEnv, max_episode_steps=12)


@pytest.fixture(scope="module")
def guess_server():
    with BackgroundServer(ServeConfig(env_id="selfgym/Guess-v0", port=0)) as server:
        yield server


@pytest.fixture(scope="module")
def flaky_server():
    with BackgroundServer(ServeConfig(env_id=FLAKY, port=0, max_sessions=3, step_timeout=1.0)) as server:
        yield server


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _ws(server: BackgroundServer) -> Any:
    return websockets_sync.connect(f"{server.url}/ws", open_timeout=5, proxy=None, legacy=True)


def _ask(ws: Any, message: dict[str, Any]) -> dict[str, Any]:
    ws.send(json.dumps(message))
    return json.loads(ws.recv(timeout=10))


def _wait(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager:DeprecationWarning")
@pytest.mark.parametrize("env_id", ["selfgym/Guess-v0", "selfgym/Code-v0"])
def test_openenv_client_plays_a_session_as_the_local_env(env_id: str) -> None:
    local = selfgym.make(env_id)
    observation, info = local.reset(seed=7)
    if env_id.endswith("Code-v0"):
        actions = ["no code here", f"```python\n{info['task'].payload['reference']}\n```"]
    else:
        actions = ["4", "2", "6", str(info["task"].payload["secret"])]
    expected = [local.step(a) for a in actions]
    local.close()
    with BackgroundServer(ServeConfig(env_id=env_id, port=0)) as server, \
            GenericEnvClient(base_url=server.http_url) as client:
        first = client.reset(seed=7)
        assert first.observation["text"] == observation and first.done is False and first.reward is None
        assert first.observation["metadata"]["task"] == info["task"].to_dict()
        for action, (text, reward, terminated, truncated, step_info) in zip(actions, expected, strict=True):
            result = client.step({"message": action})
            assert result.observation["text"] == text
            assert result.reward == reward and result.done == (terminated or truncated)
            assert result.observation["metadata"]["success"] == step_info["success"]
            assert result.observation["metadata"]["terminated"] == terminated
        assert client.state()["step_count"] == len(actions)
    assert expected[-1][4]["success"]


def test_http_endpoints_speak_openenv(guess_server: BackgroundServer) -> None:
    base = guess_server.http_url
    assert _get(f"{base}/health") == {"status": "healthy"}
    schema = _get(f"{base}/schema")
    assert schema["action"]["required"] == ["message"] and "text" in schema["observation"]["properties"]
    assert _get(f"{base}/metadata")["name"] == "selfgym/Guess-v0"
    status, reset = _post(f"{base}/reset", {"seed": 3})
    assert status == 200 and reset["done"] is False and "Guess it" in reset["observation"]["text"]
    secret = reset["observation"]["metadata"]["task"]["payload"]["secret"]
    status, step = _post(f"{base}/step", {"action": {"message": str(secret)}, "seed": 3})
    assert status == 200 and step["reward"] == 1.0 and step["done"] is True
    status, _ = _post(f"{base}/step", {"action": {"text": "3"}})
    assert status == 422


def test_bad_messages_are_that_sessions_errors(guess_server: BackgroundServer) -> None:
    with _ws(guess_server) as ws:
        ws.send("{not json")
        assert json.loads(ws.recv(timeout=10))["data"]["code"] == "INVALID_JSON"
        assert _ask(ws, {"type": "step", "data": {"message": "1"}})["data"]["code"] == "RESET_NEEDED"
        assert _ask(ws, {"type": "teleport"})["data"]["code"] == "UNKNOWN_TYPE"
        assert _ask(ws, {"type": "reset", "data": {"seed": -1}})["data"]["code"] == "VALIDATION_ERROR"
        assert _ask(ws, {"type": "reset", "data": {"options": {"task": "no-such-task"}}})["data"]["code"] == "UNKNOWN_TASK"
        assert _ask(ws, {"type": "reset", "data": {"seed": 1}})["type"] == "observation"
        assert _ask(ws, {"type": "step", "data": {"code": 1}})["data"]["code"] == "VALIDATION_ERROR"
        assert _ask(ws, {"type": "step", "data": {"message": "1"}})["type"] == "observation"


def test_a_crash_in_one_session_leaves_the_others_working(flaky_server: BackgroundServer) -> None:
    with _ws(flaky_server) as a, _ws(flaky_server) as b:
        assert _ask(a, {"type": "reset", "data": {"seed": 1}})["type"] == "observation"
        assert _ask(b, {"type": "reset", "data": {"seed": 1}})["type"] == "observation"
        crash = _ask(a, {"type": "step", "data": {"message": "crash"}})
        assert crash["data"]["code"] == "EXECUTION_ERROR" and "boom" in crash["data"]["message"]
        infra = _ask(b, {"type": "step", "data": {"message": "infra"}})
        assert infra["data"]["code"] == "INFRASTRUCTURE_ERROR"
        # both sessions go on; a slow step in one does not hold up the other
        slow = threading.Thread(target=_ask, args=(a, {"type": "step", "data": {"message": "sleep 0.5 3"}}))
        slow.start()
        started = time.monotonic()
        assert _ask(b, {"type": "reset", "data": {"seed": 2}})["type"] == "observation"
        assert time.monotonic() - started < 0.4
        slow.join()


def test_max_sessions_refuses_with_a_status(flaky_server: BackgroundServer) -> None:
    assert _wait(lambda: _get(f"{flaky_server.http_url}/sessions")["active"] == 0)
    opened = [_ws(flaky_server) for _ in range(3)]
    try:
        for ws in opened:
            assert _ask(ws, {"type": "reset", "data": {}})["type"] == "observation"
        with _ws(flaky_server) as extra:
            started = time.monotonic()
            refused = json.loads(extra.recv(timeout=5))
            assert refused["data"]["code"] == "CAPACITY_REACHED" and refused["data"]["max_sessions"] == 3
            assert time.monotonic() - started < 2
        status, body = _post(f"{flaky_server.http_url}/reset", {})
        assert status == 503 and body["code"] == "CAPACITY_REACHED"
    finally:
        for ws in opened:
            ws.close()
    assert _wait(lambda: _get(f"{flaky_server.http_url}/sessions")["active"] == 0)
    with _ws(flaky_server) as again:
        assert _ask(again, {"type": "reset", "data": {}})["type"] == "observation"


def test_a_step_past_the_timeout_closes_only_its_session(flaky_server: BackgroundServer) -> None:
    closed = FlakyEnv.closed
    with _ws(flaky_server) as ws:
        _ask(ws, {"type": "reset", "data": {}})
        reply = _ask(ws, {"type": "step", "data": {"message": "sleep 1.5 3"}})
        assert reply["data"]["code"] == "STEP_TIMEOUT"
    assert _wait(lambda: FlakyEnv.closed > closed)  # closed once the step returned


def test_idle_sessions_time_out_and_close_their_env() -> None:
    closed = FlakyEnv.closed
    with BackgroundServer(ServeConfig(env_id=FLAKY, port=0, idle_timeout=0.5)) as server, _ws(server) as ws:
        _ask(ws, {"type": "reset", "data": {}})
        reply = json.loads(ws.recv(timeout=5))
        assert reply["data"]["code"] == "SESSION_TIMEOUT"
        assert _wait(lambda: FlakyEnv.closed > closed)
        assert _get(f"{server.http_url}/sessions")["active"] == 0


_SERVER_SCRIPT = """
import sys
import selfgym
from selfgym.envs.guess import GuessEnv
from selfgym.serve import ServeConfig, serve

class Marked(GuessEnv):
    def close(self):
        with open(sys.argv[1], "a") as f:
            f.write("closed\\n")
        super().close()

selfgym.register_env("test-serve/Marked-v0", Marked, max_episode_steps=12)
serve(ServeConfig(env_id="test-serve/Marked-v0", port=int(sys.argv[2])))
"""


def test_sigterm_closes_every_env(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    marks = tmp_path / "closed.txt"
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_SERVER_SCRIPT), str(marks), str(port)],
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        server = BackgroundServer.__new__(BackgroundServer)
        server.host, server.port = "127.0.0.1", port
        assert _wait(lambda: _up(f"http://127.0.0.1:{port}/health"), timeout=30)
        sessions = [_ws(server) for _ in range(2)]
        for ws in sessions:
            assert _ask(ws, {"type": "reset", "data": {}})["type"] == "observation"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        assert marks.read_text().count("closed") == 2
    finally:
        if proc.poll() is None:
            proc.kill()


def _up(url: str) -> bool:
    try:
        return _get(url)["status"] == "healthy"
    except OSError:
        return False
