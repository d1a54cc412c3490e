"""`selfgym train` and `selfgym report` through the real command line, on the tiny model."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from selfgym.agents.models import tiny_model_dir
from selfgym.store import Store

CONFIG = '''
name = "clitrain"
iterations = 1
[env]
id = "selfgym/Guess-v0"
kwargs = {{ max_episode_steps = 2 }}
[policy]
model = "{model}"
device = "cpu"
[agent.sampling]
max_tokens = 4
temperature = 1.0
[rollout]
tasks_per_iteration = 2
group_size = 2
[reflections]
enabled = false
[trainer]
algorithm = "none"
[eval]
n_tasks = 2
'''


def selfgym(*args, cwd):
    return subprocess.run([sys.executable, "-m", "selfgym.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One `selfgym train run.toml --no-report` in a fresh working directory (no --run-dir)."""
    cwd = tmp_path_factory.mktemp("cwd")
    (cwd / "run.toml").write_text(CONFIG.format(model=tiny_model_dir()))
    out = selfgym("train", "run.toml", "--no-report", cwd=cwd)
    assert out.returncode == 0, out.stderr
    return cwd, out


def test_help_config_lists_every_key_with_its_help(tmp_path):
    out = selfgym("train", "--help-config", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "teacher.enabled = False  # propose new tasks from each iteration's failures" in lines
    assert any(line.startswith("eval.n_tasks = 20  # held-out tasks") for line in lines)
    assert not (tmp_path / "runs").exists()  # it only prints: no run starts


def test_train_without_run_dir_stores_under_runs_name_and_no_report_writes_none(trained):
    cwd, out = trained
    run_dir = cwd / "runs" / "clitrain"
    assert re.search(r"^held-out success by iteration: it0: [01]\.\d{3}, it1: [01]\.\d{3}$", out.stdout, re.M)
    store = Store(run_dir)
    assert [e["iteration"] for e in store.evals("clitrain")] == [0, 1]
    assert store.count_trajectories(run_id="clitrain") == 2 * 2
    assert not (run_dir / "report").exists() and "report:" not in out.stdout


def test_report_command_writes_the_report_of_a_trained_run(trained):
    cwd, _ = trained
    out = selfgym("report", "runs/clitrain", cwd=cwd)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "report: runs/clitrain/report/index.html"
    page = (cwd / "runs" / "clitrain" / "report" / "index.html").read_text()
    assert "id='plot-heldout'" in page and (cwd / "runs" / "clitrain" / "report" / "heldout.png").stat().st_size
    missing = selfgym("report", "nowhere", cwd=cwd)
    assert missing.returncode == 2 and missing.stderr.strip() == "error: nowhere has no store.sqlite; pass a run directory"


def test_resumed_finished_run_trains_nothing_and_writes_the_report_by_default(trained, tmp_path):
    cwd, _ = trained
    run_dir = tmp_path / "copy"
    shutil.copytree(cwd / "runs" / "clitrain", run_dir)
    shutil.rmtree(run_dir / "report", ignore_errors=True)
    out = selfgym("train", str(cwd / "run.toml"), "--run-dir", str(run_dir), "--resume", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == f"report: {run_dir / 'report' / 'index.html'}"
    assert (run_dir / "report" / "index.html").exists()
    assert Store(run_dir).count_trajectories(run_id="clitrain") == 2 * 2  # nothing ran again
    assert not Path(tmp_path / "runs").exists()  # --run-dir, not the default
