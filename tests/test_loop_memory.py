"""The loop's teacher and skill stages on the code env with the embedded model: they add verified
skills and accepted tasks with their lineage, log their metrics, tie skill snapshots to checkpoints,
and a resumed iteration does not run them twice.

The student (the embedded model) acts, extracts the skills and solves the teacher's proposals. The
teacher is a scripted policy behind the OpenAI-compatible server (``policy.teacher_model``, the way a
bigger teacher plugs in): at this size the model writes no valid proposal, and the test is about the
stage (parsing, sandbox validation, screens, the solver's pass rate, storage), not the model.
"""

from collections.abc import Iterator
from dataclasses import replace

import pytest

from selfgym.agents.server import start_server
from selfgym.agents.testing import FunctionPolicy
from selfgym.config import from_dict
from selfgym.envs.code.sandbox import shared_sandbox
from selfgym.envs.generators.proposal import Proposal, render_proposal
from selfgym.run.loop import run_memory, train
from selfgym.run.loopconfig import RunConfig
from selfgym.store import Store

# Valid (the reference passes, the failing example is caught) and unlike any arithmetic task.
PROPOSAL = Proposal(
    instruction="Return the run-length encoding of the string s as a list of [character, count] pairs, in order.",
    entry_point="run_lengths",
    tests=('assert run_lengths("aaabcc") == [["a", 3], ["b", 1], ["c", 2]]', 'assert run_lengths("") == []',
           'assert run_lengths("zz") == [["z", 2]]'),
    reference=("def run_lengths(s: str) -> list:\n    out = []\n    for ch in s:\n        if out and out[-1][0] == ch:\n"
               "            out[-1][1] += 1\n        else:\n            out.append([ch, 1])\n    return out\n"),
    failing=("def run_lengths(s: str) -> list:\n    return [[ch, 1] for ch in s]\n",),
)

CONFIG = {
    "name": "mem", "iterations": 2,
    "env": {"id": "selfgym/Code-v0", "families": ["arithmetic"], "difficulties": [0.0],
            "kwargs": {"max_attempts": 1}},
    "agent": {"system_prompt": "You write correct, minimal Python. Reply with one ```python code block.",
              "sampling": {"max_tokens": 96, "temperature": 0.7}},
    "rollout": {"tasks_per_iteration": 3, "group_size": 2},
    "skills": {"mode": "read-write", "max_candidates": 2, "sampling": {"max_tokens": 160, "temperature": 0.0}},
    # band [0, 1]: any measured pass rate is accepted, so acceptance does not hang on the student's luck
    "teacher": {"enabled": True, "proposals_per_iteration": 2, "solver_attempts": 1, "max_tokens": 256,
                "reward": "band", "band_lo": 0.0, "band_hi": 1.0, "mutation": "off"},
    "trainer": {"algorithm": "rft", "rft": {"train": {"batch_size": 2, "micro_batch_size": 2}}},
    "eval": {"every": 0, "before": False, "n_tasks": 3},
}


@pytest.fixture(scope="module")
def teacher_url() -> Iterator[str]:
    """A scripted teacher that answers every context with ``PROPOSAL``, served over HTTP."""
    with start_server(FunctionPolicy(lambda chat: render_proposal(PROPOSAL), name="scripted-teacher")) as server:
        yield server.url


def _check_skills(store: Store) -> None:
    """At least one skill, each passing its own tests and extracted from one of the run's successes."""
    rows = store.memory("skill")
    assert rows, "the skill stage stored no skill"
    episodes = {t.id: t for t in store.trajectories(run_id="mem")}
    sandbox = shared_sandbox()
    for skill in rows:
        source = episodes.get(skill["source_trajectory_id"])
        assert source is not None and source.success and source.task_id == skill["source_task_id"], skill
        assert skill["tests"] and skill["code"]
        run = sandbox.exec(skill["code"] + "\n\n" + skill["tests"] + "\n", timeout_s=30)
        assert run.exit_code == 0, f"skill {skill['name']} fails its own tests: {run.stderr[-300:]}"
    assert sum(v for _, k, v in store.metrics("mem") if k in ("skills/added", "skills/merged")) >= 1


def _check_generated(store: Store) -> None:
    """The teacher's proposal became one task, tied to a failure of iteration 0; its twin was a duplicate."""
    counts = {k: v for _, k, v in store.metrics("mem") if k.startswith("teacher/")}
    assert (counts["teacher/accepted"], counts["teacher/rejected_duplicate"]) == (1.0, 1.0), counts
    generated = store.tasks(split="generated")
    assert len(generated) == 1, f"{len(generated)} generated tasks stored, {counts['teacher/accepted']:.0f} accepted"
    task = generated[0]
    failed = {t.task_id for t in store.trajectories(run_id="mem", iteration=0) if not t.success}
    assert task.parent_id in failed and task.source.startswith("teacher:mem/teacher:openai:")
    assert task.payload["entry_point"] == "run_lengths"
    generator = task.payload["generator"]
    assert generator["run_id"] == "mem" and generator["iteration"] == 1 and generator["solver_attempts"] == 1
    assert 0.0 <= generator["pass_rate"] <= 1.0  # the student really attempted it
    assert task.difficulty == pytest.approx(1.0 - generator["pass_rate"])


@pytest.mark.slow
@pytest.mark.timeout(900)  # the real model on 2 cores: about 4 minutes alone, much more on a busy host
def test_teacher_and_skill_stages_run_log_and_resume(tmp_path, teacher_url):
    config = from_dict(RunConfig, CONFIG)
    config = replace(config, policy=replace(config.policy, teacher_model=f"openai:{teacher_url}"))
    curricula = {}  # the curriculum state saved with each iteration, as a crash would leave it
    result = train(config, tmp_path, on_iteration=lambda it: curricula.setdefault(
        it, Store(tmp_path).get_state("mem", "curriculum")))
    assert result.iterations == 2 and set(result.heldout) == {2}
    store = Store(tmp_path)
    keys = {k for _, k, _ in store.metrics("mem")}
    assert {"skills/size", "skills/proposed", "skills/uses", "time/skills_s"} <= keys
    proposed = [v for it, k, v in store.metrics("mem", "teacher/proposed")]
    assert proposed == [2.0]  # iteration 1 only: the teacher works from the previous iteration's failures
    for it in (0, 1):
        assert store.get_state("mem", f"skills/done/{it}") is not None
    snapshots = store.memory("skill_snapshot")
    assert len(snapshots) == len(store.checkpoints("mem"))
    assert [s["checkpoint_id"] for s in snapshots] == [c["id"] for c in store.checkpoints("mem")]
    _check_skills(store)
    _check_generated(store)
    kinds = {type(m).__name__ for m in run_memory(tmp_path, "on")}
    assert kinds == {"SkillLibrary"}
    # a crash after iteration 2's stages but before its state was saved: resuming repeats neither stage
    counts = (len(store.tasks(split="generated")), len(store.memory("skill")), store.count_trajectories(run_id="mem"))
    assert counts[0] == 1 and counts[1] >= 1
    store.set_state("mem", "curriculum", curricula[1])
    store.set_state("mem", "iteration", 1)
    train(config, tmp_path, resume=True)
    assert (len(store.tasks(split="generated")), len(store.memory("skill")),
            store.count_trajectories(run_id="mem")) == counts
    assert [v for _, _, v in store.metrics("mem", "teacher/proposed")] == [2.0]
