import os
import signal
import subprocess
import sys
import textwrap

import pytest

from selfgym.errors import DuplicateRecordError
from selfgym.store import Store
from selfgym.types import Task, Trajectory, Turn


def _traj(i, run_id="r1", success=True):
    turns = [Turn(observation=f"obs {i}.{j}", action=f"act {i}.{j}", reward=float(j == 1),
                  prompt_ids=list(range(i, i + 5 + j)), completion_ids=[i, j, 99], logprobs=[-0.1 * j, -0.2, -0.3])
             for j in range(2)]
    return Trajectory(id=f"traj-{i}", task_id=f"task-{i % 3}", env_id="selfgym/Guess-v0", run_id=run_id,
                      iteration=i // 4, turns=turns, success=success, total_reward=1.0 if success else 0.0,
                      instructions="be brief")


def test_trajectories_roundtrip_with_filters(tmp_path):
    store = Store(tmp_path / "run")
    assert store.path.name == "store.sqlite"
    store.add_tasks([Task(id=f"task-{i}", family="guess", prompt="p", split="heldout" if i == 2 else "train")
                     for i in range(3)])
    written = [_traj(i, success=i % 2 == 0) for i in range(8)]
    for traj in written:
        store.add_trajectory(traj)
    assert store.trajectory("traj-3") == written[3]
    assert [t.id for t in store.trajectories(success=True)] == ["traj-0", "traj-2", "traj-4", "traj-6"]
    assert [t.id for t in store.trajectories(iteration=1)] == ["traj-4", "traj-5", "traj-6", "traj-7"]
    assert {t.task_id for t in store.trajectories(split="heldout")} == {"task-2"}
    assert store.count_trajectories(run_id="r1") == 8
    with pytest.raises(DuplicateRecordError):
        store.add_trajectory(_traj(0))
    aborted = _traj(100)
    aborted.aborted = "SandboxError: worker died"
    store.add_trajectory(aborted)
    assert store.count_trajectories() == 8 and store.count_trajectories(include_aborted=True) == 9


def test_memory_checkpoints_evals_metrics_state(tmp_path):
    store = Store(tmp_path)
    store.add_memory("skill-a-v1", "skill", "add", {"code": "def add(a, b): return a + b"}, run_id="r")
    store.add_memory("skill-a-v2", "skill", "add", {"code": "def add(a, b):\n    return a + b"}, version=2)
    assert [m["version"] for m in store.memory("skill", key="add")] == [1, 2]
    store.add_checkpoint("ckpt-1", run_id="r", iteration=1, path="ckpt/1", adapter=True)
    assert store.checkpoints("r")[0]["adapter"] is True
    store.add_eval(run_id="r", env_id="selfgym/Guess-v0", split="heldout", metrics={"success_rate": 0.5}, iteration=1)
    assert store.evals("r")[0]["metrics"] == {"success_rate": 0.5}
    store.log_metrics("r", 0, {"train/success": 0.25})
    assert store.metrics("r", "train/success") == [(0, "train/success", 0.25)]
    store.set_state("r", "iteration", 3)
    store.set_state("r", "iteration", 4)
    assert store.get_state("r", "iteration") == 4 and store.get_state("r", "nope", default=0) == 0


def test_exports(tmp_path):
    store = Store(tmp_path)
    for i in range(3):
        store.add_trajectory(_traj(i, success=i != 1))
    assert store.export_jsonl(tmp_path / "out.jsonl", success=True) == 2
    ds = store.to_dataset()
    assert len(ds) == 3
    assert ds[0]["messages"][:2] == [{"role": "system", "content": "be brief"},
                                     {"role": "user", "content": "obs 0.0"}]
    assert ds[0]["messages"][2] == {"role": "assistant", "content": "act 0.0"}


WRITER = textwrap.dedent('''
    import sys
    from selfgym.store import Store
    from selfgym.types import Trajectory, Turn
    run_dir, total = sys.argv[1], int(sys.argv[2])
    store = Store(run_dir)
    store.create_run("r1", {"total": total})
    for i in range(total):
        tid = f"traj-{i}"
        if store.has_trajectory(tid):  # resume: what is stored is done
            continue
        turns = [Turn(observation="o" * 2000, action=f"a{i}", prompt_ids=list(range(3000)),
                      completion_ids=[i] * 50, logprobs=[-1.0] * 50) for _ in range(4)]
        store.add_trajectory(Trajectory(id=tid, task_id=f"t{i}", env_id="e", run_id="r1", turns=turns))
        print(i, flush=True)
''')


def test_sigkill_mid_run_loses_nothing_committed_and_resumes(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(script), str(run_dir), "100000"], stdout=subprocess.PIPE, text=True)
    committed = [int(proc.stdout.readline()) for _ in range(30)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    store = Store(run_dir)
    assert store.integrity_check() == "ok"
    stored = store.trajectories(run_id="r1")
    ids = [t.id for t in stored]
    assert len(ids) == len(set(ids)) >= 30
    assert {f"traj-{i}" for i in committed} <= set(ids)
    for traj in stored:  # every committed trajectory is whole
        assert len(traj.turns) == 4 and traj.turns[3].completion_ids == [int(traj.id.split("-")[1])] * 50
    before = len(ids)
    store.close()

    total = before + 20
    done = subprocess.run([sys.executable, str(script), str(run_dir), str(total)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.split()) == 20  # only the missing ones were written
    store = Store(run_dir)
    final = [t.id for t in store.trajectories(run_id="r1")]
    assert sorted(final, key=lambda s: int(s.split("-")[1])) == [f"traj-{i}" for i in range(total)]
