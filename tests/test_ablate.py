"""`selfgym ablate`: matched-budget variants without one component each, and one comparison."""

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from selfgym.agents.models import tiny_model_dir
from selfgym.agents.policy import SamplingParams
from selfgym.config import load_toml, to_dict
from selfgym.errors import ConfigError
from selfgym.run.ablate import run_ablation, variants
from selfgym.run.loopconfig import RunConfig
from selfgym.store import Store

sys.path.insert(0, str(Path(__file__).parent))
import loop_helpers  # noqa: E402

loop_helpers.register()


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "run.toml"
    path.write_text(loop_helpers.config_text("abl", str(tiny_model_dir()), algorithm="grpo", iterations=1))
    config = load_toml(path, RunConfig)
    # sampled: the tiny random model's greedy reply is blank lines, which are no lesson (nothing stored)
    reflections = replace(config.reflections, enabled=True, sampling=SamplingParams(max_tokens=16, temperature=1.0))
    return replace(config, reflections=reflections)


def _flatten(d, prefix=""):
    out = {}
    for key, value in d.items():
        out.update(_flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def test_variants_change_only_the_named_component(config):
    planned = variants(config, ["reflections", "rl"])
    assert list(planned) == ["full", "no-reflections", "no-rl"]
    full = _flatten(to_dict(config))
    for key, expected in (("no-reflections", {"reflections.enabled"}), ("no-rl", {"trainer.algorithm"})):
        changed = {k for k, v in _flatten(to_dict(planned[key])).items() if full[k] != v}
        assert changed == expected | {"name"}, key
    assert planned["no-rl"].trainer.algorithm == "none" and not planned["no-reflections"].reflections.enabled


def test_variants_refuse_unknown_or_unused_components(config):
    with pytest.raises(ConfigError, match="unknown component.*weights"):
        variants(config, ["weights"])
    with pytest.raises(ConfigError, match="rl already off"):
        variants(replace(config, trainer=replace(config.trainer, algorithm="none")), ["rl"])
    assert set(variants(config)) >= {"full", "no-reflections", "no-rl"}  # default: every component in use


@pytest.mark.slow
def test_ablation_runs_each_variant_and_compares(tmp_path, config):
    result = run_ablation(config, tmp_path / "abl", without=["reflections", "rl"])
    rows = {r["variant"]: r for r in result.rows}
    assert set(rows) == {"full", "no-reflections", "no-rl"}
    for key, row in rows.items():
        store = Store(tmp_path / "abl" / key)
        assert [e["iteration"] for e in store.evals(row["run_id"])] == [0, 1]
        # same budget: one iteration of tasks_per_iteration x group_size episodes in every variant
        assert store.count_trajectories(run_id=row["run_id"]) == 3 * 2
        assert row["paired_tasks"] == config.eval.n_tasks
        assert (tmp_path / "abl" / key / "report" / "index.html").exists()
    assert not Store(tmp_path / "abl" / "no-rl").checkpoints(rows["no-rl"]["run_id"])
    assert Store(tmp_path / "abl" / "full").checkpoints(rows["full"]["run_id"])
    assert not Store(tmp_path / "abl" / "no-reflections").memory("reflection")
    # ... while the full run wrote them: one per failed episode it reflected on, none for a success
    full = Store(tmp_path / "abl" / "full")
    failed = {t.id for t in full.trajectories(run_id=rows["full"]["run_id"]) if not t.success}
    reflections = full.memory("reflection")
    assert failed and reflections, (len(failed), len(reflections))
    assert {r["trajectory_id"] for r in reflections} <= failed
    assert rows["full"]["vs_full"] == 0.0
    page = result.html.read_text()
    assert page.count("<tr><td>") == 3 and "plot-ablation" in page and "no-rl/report/index.html" in page
    assert json.loads((tmp_path / "abl" / "ablation.json").read_text())[0]["variant"] == "full"
    # finished variants are not run again on --resume; without it the stored runs are protected
    again = run_ablation(config, tmp_path / "abl", without=["reflections", "rl"], resume=True)
    assert [r["after"] for r in again.rows] == [r["after"] for r in result.rows]
    with pytest.raises(ConfigError, match="pass --resume"):
        run_ablation(config, tmp_path / "abl", without=["rl"])
