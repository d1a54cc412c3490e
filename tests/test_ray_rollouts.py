"""Ray rollouts: the same episodes as the in-process engine; lost workers and env servers abort only
their episodes, and a resume completes the rollouts with nothing lost or duplicated."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import gymnasium
import pytest

ray = pytest.importorskip("ray", reason="Ray rollouts need the ray extra (pip install 'selfgym[ray]')")

import selfgym  # noqa: E402
from selfgym.agents.base import ScriptedAgent  # noqa: E402
from selfgym.envs.base import llm_env  # noqa: E402
from selfgym.run.distributed import RayConfig, RayRollouts  # noqa: E402
from selfgym.run.rollout import RolloutConfig, run_rollouts  # noqa: E402
from selfgym.store import Store  # noqa: E402
from selfgym.types import Completion, Task, Trajectory  # noqa: E402

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module", autouse=True)
def ray_local() -> Any:
    """One local Ray instance for the module (starting one costs ~10 s on 2 cores)."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers get this module's agents
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


class SlowScripted(ScriptedAgent):
    """The oracle, a little slowly (so a kill lands mid-rollout)."""

    def act(self, observation: str, info: dict[str, Any]) -> Completion:
        time.sleep(0.1)
        return super().act(observation, info)


class SlowBisect:
    """Guess-v0 by bisection from the observations (a remote env has no oracle), a little slowly."""

    name = "bisect"

    def __init__(self, env: gymnasium.Env) -> None:
        self.low, self.high, self.guess = 1, 1, 1

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        import re

        self.low, self.high = 1, int(re.findall(r"\d+", observation)[-1])

    def act(self, observation: str, info: dict[str, Any]) -> Completion:
        time.sleep(0.25)
        if observation.startswith("higher"):
            self.low = self.guess + 1
        elif observation.startswith("lower"):
            self.high = self.guess - 1
        self.guess = (self.low + self.high) // 2
        return Completion(text=str(self.guess))


def _record(traj: Trajectory) -> tuple[Any, ...]:
    """What must match between engines (ids and timings differ)."""
    return (traj.task_id, traj.env_id, traj.seed, traj.attempt, traj.success, traj.total_reward, traj.terminated,
            traj.truncated, traj.aborted, traj.policy_id, traj.instructions, traj.info,
            [(t.observation, t.action, t.reward, t.prompt_ids, t.completion_ids, t.parse_error) for t in traj.turns])


@pytest.mark.parametrize("env_id", ["selfgym/Guess-v0", "selfgym/Code-v0"])
def test_ray_workers_play_the_engines_episodes(env_id: str, tmp_path: Path) -> None:
    config = RolloutConfig(group_size=2, seed=11, progress=False)
    fields = {"run_id": "r", "iteration": 3}
    local_store, ray_store = Store(tmp_path / "local"), Store(tmp_path / "ray")
    local = run_rollouts(env_id, ScriptedAgent, 3, config, store=local_store, **fields)
    started = time.perf_counter()
    remote = RayRollouts(RayConfig(workers=2))(env_id, ScriptedAgent, 3, config, store=ray_store, **fields)
    print(f"{env_id}: in-process {local.wall_s:.2f}s, ray (2 workers) {time.perf_counter() - started:.2f}s")
    assert [_record(t) for t in remote.trajectories] == [_record(t) for t in local.trajectories]
    assert all(t.success for t in remote.trajectories) and remote.aborted == 0
    assert remote.steps == sum(len(t.turns) for t in local.trajectories)
    stored = sorted(ray_store.trajectories(run_id="r"), key=lambda t: (t.task_id, t.attempt))
    expected = sorted(local_store.trajectories(run_id="r"), key=lambda t: (t.task_id, t.attempt))
    assert [_record(t) for t in stored] == [_record(t) for t in expected]
    assert {t.id for t in stored} == {t.id for t in remote.trajectories}  # the driver wrote what came back
    assert sorted(t.id for t in ray_store.tasks()) == sorted(t.id for t in local_store.tasks())


class Fifty:
    """Guesses 50 every turn: stuck from its second turn (picklable, for the workers)."""

    name = "fifty"

    def __init__(self, env: gymnasium.Env) -> None:
        pass

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        pass

    def act(self, observation: str, info: dict[str, Any]) -> Completion:
        return Completion(text="50")


@pytest.mark.parametrize("stuck_after", [3, 0])
def test_ray_workers_end_a_stuck_episode_where_the_engine_does(stuck_after: int) -> None:
    config = RolloutConfig(seed=11, progress=False, stuck_after=stuck_after)
    local = run_rollouts("selfgym/Guess-v0", Fifty, 2, config)
    remote = RayRollouts(RayConfig(workers=2))("selfgym/Guess-v0", Fifty, 2, config)
    assert [_record(t) for t in remote.trajectories] == [_record(t) for t in local.trajectories]
    assert [len(t.turns) for t in remote.trajectories] == [stuck_after or 12] * 2


def _counted_guess(log: str) -> gymnasium.Env:
    """Guess-v0, noting the pid of each process that makes one (a line in ``log``)."""
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()}\n")
    return selfgym.make("selfgym/Guess-v0")


def test_kept_workers_serve_the_next_calls_and_one_that_died_between_them_is_replaced(tmp_path: Path) -> None:
    import functools

    log = tmp_path / "made"
    make_env = functools.partial(_counted_guess, str(log))

    def made() -> int:  # envs made by the workers (the driver makes one a call to pick the tasks)
        return sum(pid != str(os.getpid()) for pid in log.read_text().split())

    config = RolloutConfig(seed=5, progress=False)
    local = [_record(t) for t in run_rollouts(make_env, ScriptedAgent, 4, config).trajectories]
    log.unlink()
    with RayRollouts(RayConfig(workers=2), keep_workers=True) as pool:
        first = pool(make_env, ScriptedAgent, 4, config)
        pids = sorted(pool.pids)
        second = pool(make_env, ScriptedAgent, 4, config)
        assert sorted(pool.pids) == pids  # the same processes, still alive between the calls
        assert [_record(t) for t in first.trajectories] == [_record(t) for t in second.trajectories] == local
        assert made() == 2  # each worker made its env once: the second call reused them

        stuck = pool(make_env, Fifty, 2, RolloutConfig(seed=5, progress=False, stuck_after=2))
        assert sorted(pool.pids) == pids and made() == 2  # a new agent, the same envs
        assert {t.policy_id for t in stuck.trajectories} == {"fifty"} and not any(t.success for t in stuck.trajectories)

        os.kill(pids[0], signal.SIGKILL)  # dies while idle: the next call replaces it before sending it work
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pids[0]}"):
            time.sleep(0.1)
        third = pool(make_env, ScriptedAgent, 4, config)
        assert third.aborted == 0 and [_record(t) for t in third.trajectories] == local
        assert pids[0] not in pool.pids and pids[1] in pool.pids and len(pool.pids) == 2
        assert made() == 3  # only the replacement made a new env
    assert pool.pids == []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pids[1]}"):
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{pids[1]}")  # close() stopped the kept workers


class DriverStopped(Exception):
    pass


def _resume(pool: RayRollouts, store: Store, tasks: list[Task], group: int) -> None:
    """The loop's resume: each task's missing attempts, from its count of stored attempts."""
    done = store.count_by_task(run_id="r", iteration=0, include_aborted=True)
    missing: dict[int, list[Task]] = {}
    for task in tasks:
        if done[task.id] < group:
            missing.setdefault(done[task.id], []).append(task)
    for first, chunk in sorted(missing.items()):
        pool("selfgym/Guess-v0", SlowScripted, chunk, RolloutConfig(group_size=group - first, progress=False),
             store=store, first_attempt=first, run_id="r", iteration=0)


def test_a_killed_worker_aborts_only_its_episode_and_a_resume_completes(tmp_path: Path) -> None:
    env = selfgym.make("selfgym/Guess-v0")
    tasks = list(llm_env(env).task_source.tasks("train", limit=4))
    env.close()
    store, group = Store(tmp_path), 2
    pool = RayRollouts(RayConfig(workers=2))
    seen: list[Trajectory] = []
    killed: list[int] = []

    def on_trajectory(traj: Trajectory) -> None:
        seen.append(traj)
        if len(seen) == 1:  # both workers are busy with their next episode: kill one
            pid = pool.pids[0]
            assert pid > 1 and pid != os.getpid()
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)
        if len(seen) == 5:  # then the driver itself stops before the end
            raise DriverStopped

    with pytest.raises(DriverStopped):
        pool("selfgym/Guess-v0", SlowScripted, tasks, RolloutConfig(group_size=group, progress=False),
             store=store, on_trajectory=on_trajectory, run_id="r", iteration=0)
    first = store.trajectories(run_id="r", include_aborted=True)
    assert len(first) == 5
    aborted = [t for t in first if t.aborted]
    assert len(aborted) == 1 and ("RayActorError" in aborted[0].aborted or "ActorDied" in aborted[0].aborted)
    assert all(t.success for t in first if not t.aborted)
    assert pool.pids == []  # the workers were stopped with the call

    _resume(pool, store, tasks, group)
    final = store.trajectories(run_id="r", include_aborted=True)
    attempts = Counter((t.task_id, t.attempt) for t in final)
    assert sorted(attempts) == sorted((t.id, a) for t in tasks for a in range(group))
    assert set(attempts.values()) == {1}  # nothing lost, nothing twice
    assert {t.id for t in first} <= {t.id for t in final}  # what the first run stored is kept
    assert [t for t in final if t.aborted] == aborted  # the lost episode stays aborted, never re-scored
    index = {task.id: i for i, task in enumerate(tasks)}
    assert all(t.seed == index[t.task_id] * group + t.attempt for t in first)  # the engine's seeds


def _broken_agent(env: gymnasium.Env) -> Any:
    raise ValueError("a bug in the agent factory")


def test_a_worker_that_cannot_start_is_an_error_not_an_abort(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(ray.exceptions.RayActorError, match="a bug in the agent factory"):
        RayRollouts(RayConfig(workers=1))("selfgym/Guess-v0", _broken_agent, 2, RolloutConfig(progress=False),
                                          store=store, run_id="r")
    assert store.trajectories(run_id="r", include_aborted=True) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def test_a_killed_env_server_aborts_the_episodes_it_held(tmp_path: Path) -> None:
    port = _free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "selfgym"), "serve", "selfgym/Guess-v0", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not _healthy(f"http://127.0.0.1:{port}"):
            assert server.poll() is None and time.monotonic() < deadline, "the env server did not start"
            time.sleep(0.2)
        env = selfgym.make("selfgym/Guess-v0")
        tasks = list(llm_env(env).task_source.tasks("train", limit=3))
        env.close()
        url = f"ws://127.0.0.1:{port}"
        store = Store(tmp_path)
        seen: list[Trajectory] = []

        def on_trajectory(traj: Trajectory) -> None:
            seen.append(traj)
            if len(seen) == 1:
                server.send_signal(signal.SIGKILL)

        result = RayRollouts(RayConfig(workers=2, env_servers=(url,)))(
            "selfgym/Guess-v0", SlowBisect, tasks, RolloutConfig(group_size=2, progress=False), store=store,
            env_kwargs={"reconnect_attempts": 1, "connect_timeout": 2.0}, on_trajectory=on_trajectory,
            run_id="r", iteration=0)
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
    assert len(result.trajectories) == 6 and result.trajectories[0].env_id == "selfgym/Guess-v0"
    finished = [t for t in result.trajectories if not t.aborted]
    assert finished and all(t.success for t in finished)
    reasons = [t.aborted for t in result.trajectories if t.aborted]
    assert reasons and all(url in r for r in reasons), reasons  # RemoteEnvError (or its subclass _Dropped)
    stored = store.trajectories(run_id="r", include_aborted=True)
    assert sorted((t.task_id, t.attempt) for t in stored) == sorted((t.id, a) for t in tasks for a in range(2))


def test_selfgym_eval_on_ray_workers_scores_as_in_process(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from selfgym.cli import app

    scores = {}
    for backend in ("local", "ray"):
        out = tmp_path / f"{backend}.json"
        result = CliRunner().invoke(app, ["eval", "selfgym/Guess-v0", "-n", "3", "-k", "2", "--backend", backend,
                                          "--workers", "2", "--json", str(out), "--run-dir", str(tmp_path / backend)])
        assert result.exit_code == 0, result.output
        scores[backend] = json.loads(out.read_text())
        assert scores[backend].pop("throughput")["rollout/env_steps_per_s"] > 0  # what it cost differs, not the scores
    assert scores["ray"] == scores["local"] and scores["ray"]["success_rate"] == 1.0
    stored = Store(tmp_path / "ray").trajectories()
    assert len(stored) == 6 and {t.attempt for t in stored} == {0, 1}


def test_the_loop_stages_pick_the_backend_of_the_run_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from selfgym.agents.llm import AgentConfig
    from selfgym.errors import ConfigError
    from selfgym.run.distributed import PolicyAgentFactory, rollout_backend
    from selfgym.run.loopconfig import RolloutSection, RunConfig
    from selfgym.skills.library import SkillsConfig

    def fake_run(**rollout: Any) -> Any:
        config = RunConfig(name="x", rollout=RolloutSection(**rollout))
        store = SimpleNamespace(checkpoints=lambda run_id: [{"id": "ck-1", "path": "/runs/x/ck-1"}])
        return SimpleNamespace(config=config, store=store, run_id="x", checkpoint_id="ck-1", ray_rollouts=None)

    assert rollout_backend(fake_run()) is run_rollouts
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(RayRollouts, "__call__", lambda self, *args, **kwargs: calls.append((self, args, kwargs)))
    agent = SimpleNamespace(config=AgentConfig())
    rollout_backend(fake_run(backend="ray", ray_workers=3))("make_env", agent, ["t"], None, store=None)
    rollout_backend(fake_run(backend="ray", policy_url="http://vllm:8000/v1#m", env_servers=["ws://e:1"]))(
        "make_env", agent, ["t"], None)
    run = fake_run(backend="ray", ray_workers=2)
    stage_a, stage_b = rollout_backend(run), rollout_backend(run)
    stage_a("make_env", agent, ["t"], None)
    stage_b("make_env", agent, ["t"], None)
    (pool, args, _), (pool2, args2, kwargs2), (kept_a, _, _), (kept_b, _, _) = calls
    assert kept_a is kept_b is run.ray_rollouts and kept_a.keep_workers  # one pool for the run's stages
    assert pool.config.workers == 3 and args[1] == PolicyAgentFactory("/runs/x/ck-1", agent.config, None)
    assert args2[0] == "selfgym/Code-v0" and kwargs2["env_kwargs"] == {} and pool2.config.env_servers == ("ws://e:1",)
    assert args2[1].spec == "openai:http://vllm:8000/v1#m"
    with pytest.raises(ConfigError, match="backend = 'ray'"):
        RolloutSection(policy_url="http://x/v1")
    with pytest.raises(ConfigError, match="plays without memory"):
        RunConfig(name="x", rollout=RolloutSection(backend="ray"), skills=SkillsConfig(mode="read-only"))
