"""The loop's teacher and skill stages on the code env with the embedded model: they run, log their
metrics, tie skill snapshots to checkpoints, and a resumed iteration does not run them twice."""

import pytest

from selfgym.config import from_dict
from selfgym.loop import run_memory, train
from selfgym.loopconfig import RunConfig
from selfgym.store import Store

CONFIG = {
    "name": "mem", "iterations": 2,
    "env": {"id": "selfgym/Code-v0", "families": ["arithmetic"], "difficulties": [0.0],
            "kwargs": {"max_attempts": 1}},
    "agent": {"system_prompt": "You write correct, minimal Python. Reply with one ```python code block.",
              "sampling": {"max_tokens": 96, "temperature": 0.7}},
    "rollout": {"tasks_per_iteration": 3, "group_size": 2},
    "skills": {"mode": "read-write", "max_candidates": 2, "sampling": {"max_tokens": 160, "temperature": 0.0}},
    "teacher": {"enabled": True, "proposals_per_iteration": 2, "solver_attempts": 2, "max_tokens": 256},
    "trainer": {"algorithm": "rft", "rft": {"train": {"batch_size": 2, "micro_batch_size": 2}}},
    "eval": {"every": 0, "before": False, "n_tasks": 3},
}


@pytest.mark.slow
def test_teacher_and_skill_stages_run_log_and_resume(tmp_path):
    config = from_dict(RunConfig, CONFIG)
    result = train(config, tmp_path)
    assert result.iterations == 2 and set(result.heldout) == {2}
    store = Store(tmp_path)
    keys = {k for _, k, _ in store.metrics("mem")}
    assert {"skills/size", "skills/proposed", "skills/uses", "time/skills_s"} <= keys
    assert {"teacher/proposed", "teacher/valid", "teacher/accepted", "teacher/rejected_decontam"} <= keys
    proposed = [v for it, k, v in store.metrics("mem", "teacher/proposed")]
    assert proposed == [2.0]  # iteration 1 only: the teacher works from the previous iteration's failures
    for it in (0, 1):
        assert store.get_state("mem", f"skills/done/{it}") is not None
    snapshots = store.memory("skill_snapshot")
    assert len(snapshots) == len(store.checkpoints("mem"))
    assert [s["checkpoint_id"] for s in snapshots] == [c["id"] for c in store.checkpoints("mem")]
    # skills in the library passed verification; generated tasks carry their lineage
    for skill in store.memory("skill"):
        assert skill["tests"] and skill["code"]
    for task in store.tasks(split="generated"):
        assert task.parent_id and task.source.startswith("teacher:")
    kinds = {type(m).__name__ for m in run_memory(tmp_path, "on")}
    assert kinds == {"SkillLibrary"}
    # a crash after iteration 2's stages but before its state was saved: resuming repeats neither stage
    counts = (len(store.tasks(split="generated")), len(store.memory("skill")), store.count_trajectories(run_id="mem"))
    store.set_state("mem", "iteration", 1)
    train(config, tmp_path, resume=True)
    assert (len(store.tasks(split="generated")), len(store.memory("skill")),
            store.count_trajectories(run_id="mem")) == counts
    assert [v for _, _, v in store.metrics("mem", "teacher/proposed")] == [2.0]
