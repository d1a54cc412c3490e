"""`selfgym eval` through the real command line: a run's skill library (current or a pinned snapshot),
and a plugin env whose task source has no held-out tasks."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from selfgym.agents.server import start_server
from selfgym.agents.testing import FunctionPolicy
from selfgym.config import to_dict
from selfgym.run.loopconfig import RunConfig
from selfgym.skills import SkillLibrary
from selfgym.skills.library import Skill, SkillsConfig
from selfgym.store import Store

sys.path.insert(0, str(Path(__file__).parent))
from test_registry import _write_plugin  # noqa: E402


def selfgym(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "selfgym.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def import_the_skill(chat):
    """The agent's whole answer: import the function the task asks for from the skill library."""
    task = next(m["content"] for m in chat if m["role"] == "user")
    name = re.search(r"function `(\w+)\(", task).group(1)
    return f"```python\nfrom skills import {name}\n```"


@pytest.fixture(scope="module")
def server():
    with start_server(FunctionPolicy(import_the_skill, name="skill-user")) as running:
        yield running


@pytest.fixture(scope="module")
def skill_run(tmp_path_factory):
    """A run whose library held a right `is_even` (snapshot 1), then a wrong one (snapshot 2), now a right one."""
    run_dir = tmp_path_factory.mktemp("skills")
    store = Store(run_dir)
    store.create_run("sk", to_dict(RunConfig(name="sk", env={"id": "selfgym/Code-v0"}, skills={"mode": "read-write"})), kind="loop")
    library = SkillLibrary(store, SkillsConfig(mode="read-write"), run_id="sk")
    snapshots = []
    for body in ("n % 2 == 0", "n % 2 == 1", "not n % 2"):
        library.add(Skill(name="is_even", description="Whether an integer is even.", signature="is_even(n: int) -> bool",
                          code=f"def is_even(n):\n    return {body}\n", tests="assert is_even(2)"))
        if len(snapshots) < 2:
            snapshots.append(library.snapshot())
    store.close()
    return run_dir, snapshots


def eval_with_memory(server, skill_run, memory, out_dir):
    run_dir, _ = skill_run
    out = selfgym("eval", "selfgym/Code-v0", "--policy", f"openai:{server.url}#skill-user", "-n", "1",
                  "--memory", memory, "--memory-run", str(run_dir), "--run-dir", str(out_dir))
    assert out.returncode == 0, out.stderr
    (traj,) = Store(out_dir).trajectories()
    return out.stdout, traj


def test_eval_with_the_runs_skill_library_imports_its_current_version(server, skill_run, tmp_path):
    stdout, traj = eval_with_memory(server, skill_run, "on", tmp_path / "on")
    assert "selfgym/Code-v0 · heldout · 1 tasks x 1: success 1.000" in stdout
    assert traj.success and traj.memory["skill"] == ["skill:is_even@v3"]  # shown in the prompt
    assert traj.turns[0].info["skills_used"] == ["is_even"]
    stdout, traj = eval_with_memory(server, skill_run, "off", tmp_path / "off")
    assert "success 0.000" in stdout and not traj.success and not traj.memory.get("skill")
    assert "No module named 'skills'" in traj.info["final_observation"]


def test_eval_with_a_pinned_snapshot_plays_the_library_as_it_was(server, skill_run, tmp_path):
    _, (first, _) = skill_run
    stdout, traj = eval_with_memory(server, skill_run, f"snapshot:{first}", tmp_path / "first")
    assert "success 1.000" in stdout and traj.memory["skill"] == ["skill:is_even@v1"]
    stdout, traj = eval_with_memory(server, skill_run, "snapshot", tmp_path / "latest")  # the latest snapshot
    assert "success 0.000" in stdout and traj.memory["skill"] == ["skill:is_even@v2"]
    out = selfgym("eval", "selfgym/Code-v0", "--policy", f"openai:{server.url}#skill-user", "-n", "1",
                  "--memory", "snapshot:skills-nope", "--memory-run", str(skill_run[0]))
    assert out.returncode == 2 and "no skill snapshot 'skills-nope'" in out.stderr


def test_eval_on_a_plugin_env_without_heldout_tasks_says_so(tmp_path):
    _write_plugin(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    out = selfgym("eval", "acme/Echo-v0", "--agent", "random", cwd=tmp_path, env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "nan" not in out.stdout
    assert out.stderr.strip() == ("error: acme/Echo-v0 has no 'heldout' tasks (its task source 'list' has only "
                                  "'train' tasks): nothing to evaluate; pick another split (selfgym eval --split NAME) "
                                  "or add heldout tasks to the source")
    out = selfgym("eval", "acme/Echo-v0", "--agent", "random", "--split", "train", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert "acme/Echo-v0 · train · 1 tasks x 1: success 0.000 (95% CI 0.000-0.000)" in out.stdout


class _RecordingPolicy(FunctionPolicy):
    """Answers every code task with ``neg``; remembers the sampling settings each request asked for."""

    def __init__(self):
        super().__init__(lambda chat: "```python\ndef neg(x):\n    return -x\n```", name="neg-writer")
        self.asked = []

    def generate(self, prompts, params):
        self.asked.append((params.temperature, params.max_tokens))
        return super().generate(prompts, params)


def test_eval_on_a_chosen_task_file_with_env_args_and_sampling_flags(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        '{"id": "neg", "prompt": "Write neg(x).", "entry_point": "neg", "tests": ["assert neg(2) == -2"]}\n'
        '{"id": "pos", "prompt": "Write pos(x).", "entry_point": "pos", "tests": ["assert pos(-2) == 2"]}\n')
    policy = _RecordingPolicy()
    with start_server(policy) as running:
        out = selfgym("eval", "selfgym/Code-v0", "--policy", f"openai:{running.url}#neg-writer",
                      "--tasks", f"code-jsonl:{tasks}", "--split", "train", "-n", "2",
                      "--env-arg", "max_attempts=1", "--temperature", "0", "--max-tokens", "48",
                      "--run-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "2 tasks x 1: success 0.500" in out.stdout, out.stdout
    assert policy.asked and set(policy.asked) == {(0.0, 48)}
    store = Store(tmp_path / "runs")
    trajs = store.trajectories()
    assert sorted(t.task_id for t in trajs) == ["neg", "pos"]
    assert all(len(t.turns) == 1 for t in trajs), "max_attempts=1 from --env-arg ends a failed episode at once"
    bad = selfgym("eval", "selfgym/Code-v0", "--tasks", "humaneva", cwd=tmp_path)
    assert bad.returncode != 0 and "no task source registered as 'humaneva'. Did you mean humaneval" in bad.stdout + bad.stderr


def test_eval_scores_one_attempt_greedily_and_samples_for_pass_at_k(tmp_path):
    """As the loop's eval section: -k 1 is greedy unless told otherwise; pass@k keeps the agent's own
    temperature; pass@k at temperature 0 (k copies of one answer) is refused."""
    policy = _RecordingPolicy()
    with start_server(policy) as running:
        spec = f"openai:{running.url}#neg-writer"
        one = selfgym("eval", "selfgym/Guess-v0", "--policy", spec, "-n", "1", cwd=tmp_path)
        greedy = set(policy.asked)
        policy.asked.clear()
        two = selfgym("eval", "selfgym/Guess-v0", "--policy", spec, "-n", "1", "-k", "2", cwd=tmp_path)
        sampled = set(policy.asked)
        refused = selfgym("eval", "selfgym/Guess-v0", "--policy", spec, "-n", "1", "-k", "2", "--temperature", "0",
                          cwd=tmp_path)
        policy.asked.clear()
        told = selfgym("eval", "selfgym/Guess-v0", "--policy", f"{spec}?temperature=0.5", "-n", "1", cwd=tmp_path)
        in_spec = set(policy.asked)
    assert one.returncode == 0 and two.returncode == 0 and told.returncode == 0, one.stderr + two.stderr + told.stderr
    assert {t for t, _ in greedy} == {0.0}
    assert {t for t, _ in sampled} == {1.0}
    assert {t for t, _ in in_spec} == {0.5}, "a temperature in the spec is the user's choice, kept"
    assert refused.returncode != 0 and "repeats one greedy answer" in refused.stdout + refused.stderr


def test_eval_prints_and_writes_what_the_rollout_cost(tmp_path):
    """Throughput where users look: the console line and the JSON agree with the stored episodes,
    and the policy's prefilled plus reused prompt tokens add up to every prompt it was sent."""
    import json

    from selfgym.agents.models import tiny_model_dir

    out = selfgym("eval", "selfgym/Guess-v0", "--policy", str(tiny_model_dir()), "-n", "2", "--max-tokens", "6",
                  "--json", str(tmp_path / "scores.json"), "--run-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    trajs = Store(tmp_path / "runs").trajectories()
    turns = [turn for t in trajs for turn in t.turns]
    stuck = sum("stuck" in t.info for t in trajs)
    said = f" ({stuck} ended stuck)" if stuck else ""
    assert f"{len(trajs)} episodes{said}, {len(turns)} env steps in" in out.stdout, out.stdout
    assert "env steps/s" in out.stdout and "of prompt tokens from the cache" in out.stdout
    cost = json.loads((tmp_path / "scores.json").read_text())["throughput"]
    assert cost["tokens/rollout"] == sum(len(turn.completion_ids) for turn in turns)
    assert cost["episodes/stuck"] == stuck
    assert cost["tokens/prefilled_rollout"] + cost["tokens/cached_rollout"] == sum(len(t.prompt_ids) for t in turns)
    assert cost["tokens/cached_rollout"] > 0  # later turns extend earlier ones
