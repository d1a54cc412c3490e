"""`selfgym ablate` through the real command line, on the tiny model: the named variants run with the
same budget under the default output directory, and the comparison is written."""

import json
import re
import subprocess
import sys

import pytest

from selfgym.agents.models import tiny_model_dir
from selfgym.store import Store

CONFIG = '''
name = "cliabl"
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
enabled = true
[reflections.sampling]
max_tokens = 4
[trainer]
algorithm = "rft"
[trainer.rft.train]
batch_size = 2
micro_batch_size = 2
[eval]
n_tasks = 2
'''

SCORE = r"[01]\.\d{3} \[[01]\.\d{3}, [01]\.\d{3}\]|[01]\.\d{3}"


def selfgym(*args, cwd):
    return subprocess.run([sys.executable, "-m", "selfgym.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


@pytest.mark.slow
def test_ablate_without_rl_runs_full_and_no_rl_and_writes_the_comparison(tmp_path):
    (tmp_path / "abl.toml").write_text(CONFIG.format(model=tiny_model_dir()))
    out = selfgym("ablate", "abl.toml", "--without", "rl", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert re.fullmatch(rf"full: held-out ({SCORE}) -> ({SCORE})", lines[-3]), lines[-3:]
    assert re.fullmatch(rf"no-rl: held-out ({SCORE}) -> ({SCORE}), vs full [+-]?\d\.\d{{3}}.*", lines[-2]), lines[-3:]
    assert lines[-1] == "comparison: runs/cliabl-ablation/ablation.html"
    out_dir = tmp_path / "runs" / "cliabl-ablation"
    rows = json.loads((out_dir / "ablation.json").read_text())
    assert [r["variant"] for r in rows] == ["full", "no-rl"]  # reflections are on, but only rl was named
    assert "no-rl/report/index.html" in (out_dir / "ablation.html").read_text()
    for row in rows:
        store = Store(out_dir / row["variant"])
        assert [e["iteration"] for e in store.evals(row["run_id"])] == [0, 1]
        assert store.count_trajectories(run_id=row["run_id"]) == 2 * 2  # the same budget in each variant
        algorithm = store.run(row["run_id"])["config"]["trainer"]["algorithm"]
        assert algorithm == ("rft" if row["variant"] == "full" else "none")
    bad = selfgym("ablate", "abl.toml", "--without", "weights", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown component" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
