import json
import subprocess
import sys

import pytest


def selfgym(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "selfgym.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_envs_lists_the_registry():
    out = selfgym("envs")
    assert out.returncode == 0 and "selfgym/Guess-v0" in out.stdout and "higher/lower" in out.stdout
    assert "task source" in out.stdout and "humaneval" in out.stdout and "code-jsonl" in out.stdout


def test_run_plays_stores_and_export_reads_back(tmp_path):
    run_dir = tmp_path / "run"
    out = selfgym("run", "selfgym/Guess-v0", "--agent", "scripted", "--episodes", "2", "--run-dir", str(run_dir))
    assert out.returncode == 0, out.stderr
    assert "[TASK] I am thinking of an integer" in out.stdout and "[ENV] correct" in out.stdout
    assert "2/2 solved" in out.stdout
    exported = tmp_path / "trajs.jsonl"
    out = selfgym("export", str(run_dir), "--out", str(exported))
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in exported.read_text().splitlines()]
    assert len(records) == 2 and all(r["success"] for r in records)
    out = selfgym("export", str(run_dir), "--out", str(tmp_path / "ds"), "--format", "hf")
    assert out.returncode == 0, out.stderr
    from datasets import load_from_disk

    assert len(load_from_disk(str(tmp_path / "ds"))) == 2
    # an evaluation stored in the same run directory is not exported as training data unless asked
    out = selfgym("eval", "selfgym/Guess-v0", "--agent", "scripted", "-n", "3", "--run-dir", str(run_dir))
    assert out.returncode == 0, out.stderr
    for flags, count in (((), 2), (("--include-eval",), 5)):
        out = selfgym("export", str(run_dir), "--out", str(exported), *flags)
        assert out.returncode == 0 and f"exported {count} trajectories" in out.stdout, out.stdout + out.stderr


def test_eval_reports_success_rate_and_pass_at_k(tmp_path):
    out = selfgym("eval", "selfgym/Guess-v0", "--agent", "random", "-n", "5", "-k", "2",
                  "--json", str(tmp_path / "e.json"), "--run-dir", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    scores = json.loads((tmp_path / "e.json").read_text())
    assert scores["n_tasks"] == 5 and scores["success_rate"] == 0.0 and "pass@2" in scores["pass_at_k"]
    good = selfgym("eval", "selfgym/Guess-v0", "--agent", "scripted", "-n", "5", "--json", str(tmp_path / "g.json"))
    assert json.loads((tmp_path / "g.json").read_text())["success_rate"] == 1.0, good.stderr


def test_eval_with_a_policy_reads_a_runs_memory_only_when_asked(tmp_path):
    """--policy plays the LLM agent on a model dir; --memory on shows the run's reflections to it."""
    from selfgym.agents.models import tiny_model_dir
    from selfgym.agents.reflection import ReflectionMemory
    from selfgym.config import to_dict
    from selfgym.envs.guess import GuessTasks
    from selfgym.run.loopconfig import RunConfig
    from selfgym.store import Store

    store = Store(tmp_path / "trained")
    store.create_run("r", to_dict(RunConfig(name="r", env={"id": "selfgym/Guess-v0"}, reflections={"enabled": True})), kind="loop")
    lesson = ReflectionMemory(store, run_id="r").add(next(iter(GuessTasks().tasks("train", limit=1))),
                                                     "Halve the interval each turn.")
    shown = {}
    for memory in ("off", "on"):
        args = ["eval", "selfgym/Guess-v0", "--policy", str(tiny_model_dir()), "-n", "2", "--memory", memory,
                "--memory-run", str(tmp_path / "trained"), "--run-dir", str(tmp_path / memory)]
        out = selfgym(*args)
        assert out.returncode == 0, out.stderr
        assert "selfgym/Guess-v0 · heldout · 2 tasks x 1: success" in out.stdout
        trajs = Store(tmp_path / memory).trajectories()
        assert len(trajs) == 2
        shown[memory] = {i for t in trajs for i in t.memory.get("reflection", [])}
    assert shown == {"off": set(), "on": {lesson.id}}
    out = selfgym("eval", "selfgym/Guess-v0", "--agent", "scripted", "--memory", "on")
    assert out.returncode == 2 and "needs an LLM agent" in out.stderr


@pytest.mark.parametrize("args, message", [
    (["run", "selfgym/Nope-v0"], "no environment registered as 'selfgym/Nope-v0'"),
    (["run", "selfgym/Guess-v0", "--agent", "wizard"], "unknown agent 'wizard'"),
    (["run", "selfgym/Guess-v0", "--split", "test"], "split must be one of"),
    (["export", ".", "--out", "x.jsonl"], "has no store.sqlite"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, message, tmp_path):
    out = selfgym(*args, cwd=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
