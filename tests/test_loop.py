"""The gym loop end to end on a tiny real model: store contents, checkpoints, kill -9 and resume."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import selfgym
from selfgym.agents.models import tiny_model_dir
from selfgym.config import from_dict, load_toml
from selfgym.errors import ConfigError
from selfgym.run.loop import train
from selfgym.run.loopconfig import RunConfig
from selfgym.store import Store

sys.path.insert(0, str(Path(__file__).parent))
import loop_helpers  # noqa: E402

loop_helpers.register()


@pytest.fixture(scope="module")
def tiny():
    return str(tiny_model_dir())


def test_two_iterations_fill_the_store(tmp_path, tiny):
    (tmp_path / "run.toml").write_text(loop_helpers.config_text("t2", tiny))
    config = load_toml(tmp_path / "run.toml", RunConfig)
    result = train(config, tmp_path / "run")
    assert result.iterations == 2 and set(result.heldout) == {0, 1, 2}
    store = Store(tmp_path / "run")
    for it in (0, 1):
        trajs = store.trajectories(run_id="t2", iteration=it)
        assert len(trajs) == len({t.id for t in trajs}) >= 2
        assert all(t.turns and t.turns[0].completion_ids and t.turns[0].logprobs for t in trajs)
    assert store.get_state("t2", "iteration") == 2
    assert [e["iteration"] for e in store.evals("t2")] == [0, 1, 2]
    keys = {k for _, k, _ in store.metrics("t2")}
    assert {"train/success", "time/rollout_s", "tokens/rollout"} <= keys
    values = {(it, k): v for it, k, v in store.metrics("t2")}
    for it in (0, 1):  # each rollout stage publishes its throughput and where its time went
        assert values[it, "rollout/env_steps_per_s"] > 0 and values[it, "rollout/generated_tok_per_s"] > 0
        assert values[it, "tokens/prefilled_rollout"] > 0
        assert values[it, "time/rollout_model_s"] + values[it, "time/rollout_env_s"] == pytest.approx(
            values[it, "time/rollout_s"])
    assert any(k.startswith("curriculum/p/even@") for k in keys)
    assert store.checkpoints("t2"), "GRPO with contrast in every group trains and registers a checkpoint"
    assert Path(store.checkpoints("t2")[-1]["path"]).is_dir()
    with pytest.raises(ConfigError, match="pass --resume"):
        train(config, tmp_path / "run")
    # a run stored before a config key existed resumes (the key at its default); another value does not
    import json
    import sqlite3
    from dataclasses import replace

    with sqlite3.connect(tmp_path / "run" / "store.sqlite") as db:
        stored = json.loads(db.execute("SELECT config FROM runs WHERE id='t2'").fetchone()[0])
        del stored["eval"]["dtype"]
        db.execute("UPDATE runs SET config=? WHERE id='t2'", (json.dumps(stored),))
    assert train(config, tmp_path / "run", resume=True).iterations == 2
    with pytest.raises(ConfigError, match="started with another config"):
        train(replace(config, eval=replace(config.eval, dtype="bfloat16")), tmp_path / "run", resume=True)


def test_heldout_evaluation_on_another_task_source(tmp_path, tiny):
    """``eval.tasks`` scores the run on a set it never trains on (here the guess source's held-out
    tasks, played by the run's env), and an unknown source is a config error naming close ones."""
    text = loop_helpers.config_text("xfer", tiny, algorithm="none", iterations=1) + 'tasks = "guess"\nevery = 0\n'
    (tmp_path / "run.toml").write_text(text)
    result = train(load_toml(tmp_path / "run.toml", RunConfig), tmp_path / "run")
    store = Store(tmp_path / "run")
    guess_heldout = {t.id for t in selfgym.make_task_source("guess").tasks("heldout", limit=4)}
    assert [set(e["metrics"]["outcomes"]) for e in store.evals("xfer")] == [guess_heldout, guess_heldout]
    assert set(result.heldout) == {0, 1}
    assert store.trajectories(run_id="xfer") and all(t.task_id.startswith("even/") for t in
                                                      store.trajectories(run_id="xfer"))
    (tmp_path / "bad.toml").write_text(text.replace('tasks = "guess"', 'tasks = "gues"'))
    with pytest.raises(ConfigError, match="no task source registered as 'gues'. Did you mean guess"):
        train(load_toml(tmp_path / "bad.toml", RunConfig), tmp_path / "bad")


def test_resume_fills_a_gap_in_a_tasks_attempts(tmp_path, tiny):
    """Episodes end in any order: a kill can leave a task's attempt 1 stored without its attempt 0.
    The rollout stage then plays attempt 0 only: nothing lost, nothing duplicated."""
    import sqlite3

    from rich.console import Console

    from selfgym.run import stages
    from selfgym.run.assemble import open_run

    (tmp_path / "run.toml").write_text(loop_helpers.config_text("gap", tiny, algorithm="none", iterations=1))
    run = open_run(load_toml(tmp_path / "run.toml", RunConfig), tmp_path / "run", Console(quiet=True))
    tasks = [task for _, task in stages.choose_tasks(run, 0)]
    stages.play_rollouts(run, 0, tasks[:1])
    db = sqlite3.connect(run.store.path)
    with db:
        (gone,) = db.execute("SELECT id FROM trajectories WHERE task_id=? AND attempt=0", (tasks[0].id,)).fetchone()
        db.execute("DELETE FROM turns WHERE trajectory_id=?", (gone,))
        db.execute("DELETE FROM trajectories WHERE id=?", (gone,))
    db.close()
    stages.play_rollouts(run, 0, tasks)
    attempts = run.store.attempts_by_task(run_id="gap", iteration=0, include_aborted=True)
    assert attempts == {task.id: {0, 1} for task in tasks}
    assert set(run.store.count_by_task(run_id="gap", iteration=0, include_aborted=True).values()) == {2}
    run.env.close()


def test_config_errors_are_clear(tiny):
    with pytest.raises(ConfigError, match="group_size >= 2"):
        from_dict(RunConfig, {"name": "x", "trainer": {"algorithm": "grpo"}, "rollout": {"group_size": 1}})
    with pytest.raises(ConfigError, match="unknown key 'iteratons'"):
        from_dict(RunConfig, {"name": "x", "iteratons": 2})


RUNNER = textwrap.dedent('''
    import sys
    sys.path.insert(0, sys.argv[3])
    import loop_helpers
    loop_helpers.register()
    from selfgym.config import load_toml
    from selfgym.run.loop import train
    from selfgym.run.loopconfig import RunConfig
    config = load_toml(sys.argv[1], RunConfig)
    train(config, sys.argv[2], resume=len(sys.argv) > 4,
          on_iteration=lambda it: print("done", it, flush=True))
''')


def test_sigkill_and_resume_lose_and_duplicate_nothing(tmp_path, tiny):
    (tmp_path / "run.toml").write_text(loop_helpers.config_text("k", tiny, algorithm="rft", iterations=3))
    (tmp_path / "runner.py").write_text(RUNNER)
    run_dir = tmp_path / "run"
    args = [sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "run.toml"), str(run_dir),
            str(Path(__file__).parent)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    while (line := proc.stdout.readline()) and line.split() != ["done", "1"]:
        pass
    assert line.split() == ["done", "1"]
    store = Store(run_dir)
    deadline = time.monotonic() + 120
    while store.count_trajectories(run_id="k", iteration=1) == 0:  # kill inside iteration 2's rollouts
        assert proc.poll() is None, f"the run exited (code {proc.returncode}) before iteration 2 stored an episode"
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no episode of iteration 2 was stored within 120 s of iteration 1 ending")
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {t.id for t in store.trajectories(run_id="k", include_aborted=True)}
    assert store.get_state("k", "iteration") == 1
    done = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].split() == ["done", "3"]
    after = store.trajectories(run_id="k", include_aborted=True)
    ids = [t.id for t in after]
    assert len(ids) == len(set(ids)) and before <= set(ids)
    assert store.get_state("k", "iteration") == 3
    for it in range(3):  # every iteration holds exactly group_size attempts per distinct task
        trajs = [t for t in after if t.iteration == it]
        per_task = {}
        for t in trajs:
            per_task.setdefault(t.task_id, []).append(t.attempt)
        assert all(sorted(a) == [0, 1] for a in per_task.values()), per_task
    assert sorted(e["iteration"] for e in store.evals("k")) == [0, 1, 2, 3]
