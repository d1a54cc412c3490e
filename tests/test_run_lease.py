"""One writer per run: real ``selfgym train`` processes on one run directory, SIGSTOP/SIGKILL, and
two writers forced past the lease racing on the store's unique indexes."""

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from selfgym.agents.models import tiny_model_dir
from selfgym.errors import RunLockedError
from selfgym.lease import RunLease
from selfgym.store import Store

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))
import loop_helpers  # noqa: E402

SELFGYM = str(Path(sys.executable).parent / "selfgym")


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    """Environment for real ``selfgym`` processes that see the test env through a plugin entry point."""
    plugin = tmp_path_factory.mktemp("plugin")
    info = plugin / "selfgym_testeven-0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: selfgym-testeven\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text("[selfgym.envs]\ntesteven = loop_helpers:register\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), str(TESTS)])}


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "run.toml"
    path.write_text(loop_helpers.config_text("lease", str(tiny_model_dir()), algorithm="none", iterations=3))
    return path


def _train(config_path, run_dir, *extra):
    return [SELFGYM, "train", str(config_path), "--run-dir", str(run_dir), "--no-report", *extra]


def _wait_for(proc, text):
    lines = []
    while line := proc.stdout.readline():
        lines.append(line)
        if line.startswith(text):
            return
    raise AssertionError(f"{text!r} never printed; stdout: {''.join(lines)}; stderr: {proc.stderr.read()}")


def _assert_one_per_attempt(run_dir, iterations=3, group=2):
    """Exactly one trajectory per (iteration, task, attempt), every attempt of every group, one
    evaluation per iteration."""
    store = Store(run_dir)
    trajs = store.trajectories(run_id="lease", include_aborted=True)
    keys = Counter((t.iteration, t.task_id, t.attempt) for t in trajs)
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]
    for it in range(iterations):
        tasks = {task for i, task, _ in keys if i == it}
        assert tasks and {(it, task, a) for task in tasks for a in range(group)} <= set(keys)
    assert len(trajs) == len(keys)
    assert sorted(e["iteration"] for e in store.evals("lease")) == list(range(iterations + 1))
    assert not store.duplicates()
    store.close()
    return keys


def test_second_train_refuses_while_the_first_runs_and_resume_takes_over_after_kill(tmp_path, cli_env, config_path):
    run_dir = tmp_path / "run"
    first = subprocess.Popen(_train(config_path, run_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=cli_env)
    try:
        _wait_for(first, "iteration 1/3")
        os.kill(first.pid, signal.SIGSTOP)  # the holder is alive (stopped) while the second one starts
        try:
            second = subprocess.run(_train(config_path, run_dir, "--resume"), capture_output=True, text=True,
                                    env=cli_env, timeout=300)
            reader = Store(run_dir, busy_timeout_s=1)  # a reader needs no lease and does not wait
            assert reader.count_trajectories(run_id="lease", include_aborted=True) >= 6
            assert reader.export_jsonl(tmp_path / "live.jsonl", run_id="lease") >= 1
            reader.close()
        finally:
            os.kill(first.pid, signal.SIGCONT)
        out, err = first.communicate(timeout=600)
    finally:
        first.kill()
    assert second.returncode == 2
    assert second.stderr.startswith("error: run 'lease' in") and "Traceback" not in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert f"pid {first.pid} on host " in second.stderr and "continue with --resume" in second.stderr
    assert "iteration" not in second.stdout  # refused before doing anything
    assert first.returncode == 0, err
    assert "iteration 3/3" in out
    keys = _assert_one_per_attempt(run_dir)
    print(f"\nsecond writer (exit {second.returncode}): {second.stderr.strip()}\n"
          f"first writer exit {first.returncode}; {len(keys)} trajectories for {len(keys)} distinct "
          f"(iteration, task, attempt), max {max(keys.values())} per key")

    killed_dir = tmp_path / "killed"
    victim = subprocess.Popen(_train(config_path, killed_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=cli_env)
    _wait_for(victim, "iteration 1/3")
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    resumed = subprocess.run(_train(config_path, killed_dir, "--resume"), capture_output=True, text=True,
                             env=cli_env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "iteration 3/3" in resumed.stdout and "iteration 1/3" not in resumed.stdout
    _assert_one_per_attempt(killed_dir)


def test_lease_in_one_process_refuses_a_second_holder_and_frees_on_release(tmp_path):
    with RunLease(tmp_path, "r") as lease:
        assert lease.held and (tmp_path / "r.lease").exists()
        with pytest.raises(RunLockedError, match="already being written by this process"):
            RunLease(tmp_path, "r").acquire()
        RunLease(tmp_path, "other").acquire().release()  # another run id in the same directory is free
    RunLease(tmp_path, "r").acquire().release()


HOLDER = textwrap.dedent('''
    import sys, time
    from selfgym.lease import RunLease
    lease = RunLease(sys.argv[1], sys.argv[2]).acquire()
    print("held", flush=True)
    time.sleep(600)
''')


def test_lease_is_refused_across_processes_and_dies_with_its_holder(tmp_path):
    (tmp_path / "holder.py").write_text(HOLDER)
    holder = subprocess.Popen([sys.executable, str(tmp_path / "holder.py"), str(tmp_path / "run"), "r"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(RunLockedError, match=f"pid {holder.pid} on host .* since .*holder.py") as refused:
            RunLease(tmp_path / "run", "r").acquire()
        assert f"kill {holder.pid} on" in str(refused.value)
    finally:
        holder.kill()  # SIGKILL: nothing runs in the holder to give the lease back
        holder.wait()
    RunLease(tmp_path / "run", "r").acquire().release()


def test_ablation_beside_a_live_ablation_refuses_before_running_a_variant(tmp_path, config_path):
    from dataclasses import replace

    from selfgym.config import load_toml
    from selfgym.run.ablate import run_ablation
    from selfgym.run.loopconfig import RunConfig

    config = load_toml(config_path, RunConfig)
    config = replace(config, reflections=replace(config.reflections, enabled=True))
    (tmp_path / "holder.py").write_text(HOLDER)
    out_dir = tmp_path / "ablation"
    holder = subprocess.Popen([sys.executable, str(tmp_path / "holder.py"), str(out_dir), "ablation"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(RunLockedError, match=f"ablation 'lease' in .* is being written by pid {holder.pid} "):
            run_ablation(config, out_dir, without=["reflections"], resume=True)
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in out_dir.iterdir()) == ["ablation.lease"]  # no variant was started


RACER = textwrap.dedent('''
    import os, sys, time
    from selfgym.errors import DuplicateAttemptError, DuplicateRecordError
    from selfgym.store import Store
    from selfgym.types import Trajectory
    run_dir, name, go = sys.argv[1:4]
    store = Store(run_dir)
    store.create_run("race", {"trainer": {}}, kind="loop")
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.0005)
    won = lost = lost_evals = 0
    for it in range(20):
        for task in range(5):
            for attempt in range(2):
                try:
                    store.add_trajectory(Trajectory(id=f"{name}-{it}-{task}-{attempt}", task_id=f"t{task}",
                                                    env_id="e", run_id="race", iteration=it, attempt=attempt))
                    won += 1
                except DuplicateAttemptError:
                    lost += 1
        try:
            store.add_eval(run_id="race", env_id="e", split="heldout", metrics={}, iteration=it)
        except DuplicateRecordError:
            lost_evals += 1
    print(won, lost, lost_evals, flush=True)
''')


def test_unique_attempts_hold_when_two_writers_race_past_the_lease(tmp_path):
    """Two processes write the same 200 (iteration, task, attempt) keys and 20 evaluations at once,
    without a lease: every key is stored once, and every second insert is refused."""
    (tmp_path / "racer.py").write_text(RACER)
    go = tmp_path / "go"
    racers = [subprocess.Popen([sys.executable, str(tmp_path / "racer.py"), str(tmp_path / "run"), name, str(go)],
                               stdout=subprocess.PIPE, text=True) for name in ("a", "b")]
    assert [r.stdout.readline() for r in racers] == ["ready\n", "ready\n"]
    go.touch()
    counts = [tuple(map(int, r.communicate(timeout=120)[0].split())) for r in racers]
    assert all(r.returncode == 0 for r in racers)
    won, lost, lost_evals = (sum(c[i] for c in counts) for i in range(3))
    assert (won, lost, lost_evals) == (200, 200, 20), counts
    store = Store(tmp_path / "run")
    keys = Counter((t.iteration, t.task_id, t.attempt) for t in store.trajectories(run_id="race"))
    assert len(keys) == 200 and set(keys.values()) == {1}
    assert sorted(e["iteration"] for e in store.evals("race")) == list(range(20))
    print(f"\nrace: writer a won/lost {counts[0][:2]}, writer b won/lost {counts[1][:2]}; evals lost {lost_evals}")


OPENER = textwrap.dedent('''
    import os, sys, time
    from selfgym.store import Store
    run_dir, go = sys.argv[1], sys.argv[2]
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.0002)
    Store(run_dir).create_run(f"r{os.getpid()}", {})
''')


def test_processes_opening_a_new_store_at_once_all_get_it(tmp_path):
    """Switching a new file to WAL answers 'database is locked' without waiting when another process
    is doing the same; every opener must still get the store (it failed about 1 trial in 5 before)."""
    (tmp_path / "opener.py").write_text(OPENER)
    for trial in range(8):
        run, go = tmp_path / f"run{trial}", tmp_path / f"go{trial}"
        openers = [subprocess.Popen([sys.executable, str(tmp_path / "opener.py"), str(run), str(go)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
        assert [p.stdout.readline() for p in openers] == ["ready\n"] * 6
        go.touch()
        errors = [p.communicate(timeout=60)[1] for p in openers]
        assert all(p.returncode == 0 for p in openers), errors
        assert len(Store(run).runs()) == 6
