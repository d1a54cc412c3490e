"""``RemoteEnv``: a served env plays, rolls out and evaluates as the local one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the env server needs the serve extra (fastapi, uvicorn)")
pytest.importorskip("websockets.sync.client", reason="RemoteEnv needs websockets (serve extra)")

import selfgym  # noqa: E402
from selfgym.envs.remote import RemoteEnv, RemoteEnvError  # noqa: E402
from selfgym.errors import ConfigError, UnknownTaskError  # noqa: E402
from selfgym.run.episode import run_episode  # noqa: E402
from selfgym.run.evaluate import evaluate  # noqa: E402
from selfgym.run.rollout import RolloutConfig, run_rollouts  # noqa: E402
from selfgym.serve import BackgroundServer, ServeConfig  # noqa: E402
from selfgym.store import Store  # noqa: E402
from selfgym.types import Completion, Trajectory  # noqa: E402


class Bisect:
    """Guess-v0 by bisection, from the observations only (no oracle on a remote env)."""

    name = "bisect"

    def __init__(self, env: gymnasium.Env) -> None:
        self.low, self.high = 1, 1

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        self.low, self.high = 1, int(re.findall(r"\d+", observation)[-1])

    def act(self, observation: str, info: dict[str, Any]) -> Completion:
        if observation.startswith("higher"):
            self.low = self.guess + 1
        elif observation.startswith("lower"):
            self.high = self.guess - 1
        self.guess = (self.low + self.high) // 2
        return Completion(text=str(self.guess))


class WrongThenReference:
    """Code-v0: a wrong answer first, then the task's reference solution."""

    name = "wrong-then-reference"

    def __init__(self, env: gymnasium.Env) -> None:
        self.turn = 0

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        self.turn, self.reference = 0, info["task"].payload["reference"]

    def act(self, observation: str, info: dict[str, Any]) -> Completion:
        self.turn += 1
        code = "def f():\n    return None" if self.turn == 1 else self.reference
        return Completion(text=f"```python\n{code}\n```")


AGENTS = {"selfgym/Guess-v0": Bisect, "selfgym/Code-v0": WrongThenReference}


@pytest.fixture(scope="module", params=sorted(AGENTS))
def served(request: pytest.FixtureRequest):
    with BackgroundServer(ServeConfig(env_id=request.param, port=0)) as server:
        yield request.param, server


def _outcome(traj: Trajectory) -> tuple[Any, ...]:
    turns = [(t.observation, t.action, t.reward, t.parse_error) for t in traj.turns]
    return (traj.env_id, traj.task_id, traj.seed, turns, traj.success, traj.total_reward, traj.terminated,
            traj.truncated, traj.aborted, traj.info.get("final_observation"))


def test_make_remote_plays_the_same_trajectory(served: tuple[str, BackgroundServer]) -> None:
    env_id, server = served
    local, remote = selfgym.make(env_id), selfgym.make(env_id, remote=server.url)
    assert remote.spec is not None and remote.spec.id == env_id
    for seed in (0, 5):
        here = run_episode(local, AGENTS[env_id](local), seed=seed, split="heldout")
        there = run_episode(remote, AGENTS[env_id](remote), seed=seed, split="heldout")
        assert _outcome(there) == _outcome(here)
        assert here.success
    _, info = remote.reset(seed=1)
    assert info["task"] == local.reset(seed=1)[1]["task"]  # a Task again, equal field by field
    local.close()
    remote.close()


def test_task_source_answers_as_the_local_one(served: tuple[str, BackgroundServer]) -> None:
    env_id, server = served
    local = selfgym.make(env_id).unwrapped.task_source
    remote = selfgym.make(env_id, remote=server.url).unwrapped.task_source
    assert remote.name == local.name
    assert list(remote.tasks("heldout", limit=3)) == list(local.tasks("heldout", limit=3))
    rng_local, rng_remote = np.random.default_rng(4), np.random.default_rng(4)
    assert [remote.sample(rng_remote, difficulty=0.5) for _ in range(3)] == \
        [local.sample(rng_local, difficulty=0.5) for _ in range(3)]
    first = next(local.tasks("heldout", limit=1))
    assert remote.get(first.id) == first
    with pytest.raises(KeyError):
        remote.get("no/such/task")


def test_rollouts_and_evaluation_store_the_same_outcomes(served: tuple[str, BackgroundServer],
                                                         tmp_path: Path) -> None:
    env_id, server = served
    config = RolloutConfig(group_size=2, max_concurrent=3, seed=11, split="heldout", progress=False)
    outcomes = []
    for where, make_env in (("local", lambda: selfgym.make(env_id)),
                            ("remote", lambda: selfgym.make(env_id, remote=server.url))):
        with Store(tmp_path / where) as store:
            run_rollouts(make_env, AGENTS[env_id], 3, config, store=store, run_id="r")
            stored = sorted(store.trajectories(run_id="r"), key=lambda t: (t.task_id, t.attempt))
        scores, trajs = evaluate(make_env(), AGENTS[env_id], n_tasks=2, k=1, seed=3)
        outcomes.append(([_outcome(t) for t in stored], scores.success_rate, [_outcome(t) for t in trajs]))
    assert outcomes[0] == outcomes[1]
    assert len(outcomes[0][0]) == 6 and outcomes[0][1] == 1.0


def test_wrong_server_and_unknown_task_are_clear(served: tuple[str, BackgroundServer]) -> None:
    env_id, server = served
    other = "selfgym/Code-v0" if env_id.endswith("Guess-v0") else "selfgym/Guess-v0"
    with pytest.raises(ConfigError, match="serves"):
        selfgym.make(other, remote=server.url)
    remote = selfgym.make(env_id, remote=server.http_url)  # http:// works as well
    with pytest.raises(UnknownTaskError):
        remote.reset(options={"task": "no/such/task"})
    remote.close()


def test_a_dropped_connection_reconnects() -> None:
    with BackgroundServer(ServeConfig(env_id="selfgym/Guess-v0", port=0, idle_timeout=0.3)) as server:
        remote = RemoteEnv(server.url, "selfgym/Guess-v0")
        remote.reset(seed=1)
        import time

        time.sleep(0.8)  # the server closed the idle session meanwhile
        with pytest.raises(RemoteEnvError, match="lost"):
            remote.step("3")
        observation, info = remote.reset(seed=1)
        assert "Guess it" in observation and remote.step("3")[0]
        remote.close()


def test_killing_the_server_mid_episode_marks_the_episode_aborted() -> None:
    server = BackgroundServer(ServeConfig(env_id="selfgym/Guess-v0", port=0)).start()

    class StopsTheServer(Bisect):
        def act(self, observation: str, info: dict[str, Any]) -> Completion:
            if not observation.startswith("I am"):
                server.stop()
            return super().act(observation, info)

    remote = selfgym.make("selfgym/Guess-v0", remote=server.url, reconnect_attempts=1, connect_timeout=2)
    traj = run_episode(remote, StopsTheServer(remote), seed=0, task="guess/s1000000002/d0.5")
    assert traj.aborted and "RemoteEnvError" in traj.aborted
    assert len(traj.turns) == 1 and not traj.success
    with pytest.raises(RemoteEnvError, match="cannot connect"):
        remote.reset(seed=0)


def test_remote_env_plays_an_openenv_create_app_server() -> None:
    """Any OpenEnv server: an echo env made with OpenEnv's own ``create_app``."""
    pytest.importorskip("openenv.core.env_server", reason="needs openenv-core (the openenv extra)")
    import threading
    import time

    import uvicorn
    from openenv.core.env_server import Action, Environment, Observation, State, create_app

    class Shout(Action):
        message: str

    class Echo(Observation):
        echoed: str

    class EchoEnv(Environment):
        def reset(self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any) -> Echo:
            return Echo(echoed="ready")

        def step(self, action: Shout, timeout_s: float | None = None, **kwargs: Any) -> Echo:
            return Echo(echoed=action.message.upper(), reward=1.0, done=action.message == "bye")

        @property
        def state(self) -> State:
            return State()

    server = uvicorn.Server(uvicorn.Config(create_app(EchoEnv, Shout, Echo), host="127.0.0.1", port=0,
                                          log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        env = RemoteEnv(f"ws://127.0.0.1:{port}")
        assert env.reset(seed=0)[0] == '{"echoed": "ready"}'
        assert env.step("hi")[:4] == ('{"echoed": "HI"}', 1.0, False, False)
        assert env.step("bye")[2] is True
        env.close()
    finally:
        server.should_exit = True
        thread.join(10)


def test_check_env_passes_and_a_pickled_copy_opens_its_own_session() -> None:
    import pickle
    import warnings

    from gymnasium.utils.env_checker import check_env

    with BackgroundServer(ServeConfig(env_id="selfgym/Guess-v0", port=0)) as server:
        remote = selfgym.make("selfgym/Guess-v0", remote=server.url)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_env(remote, skip_render_check=True)
        remote.reset(seed=2)
        copy = pickle.loads(pickle.dumps(remote))
        assert copy.reset(seed=2)[0] == remote.reset(seed=2)[0]
        assert copy.step("1")[0] == remote.step("1")[0]
        copy.close()
        remote.close()
