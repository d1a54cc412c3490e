"""Transfer evaluations: first-attempt success vs success within the attempts, and the loop's
``[[eval.transfer]]`` sets scored before and after training, stored apart from the held-out ones."""

from __future__ import annotations

from pathlib import Path

import pytest

import selfgym
from selfgym.agents.llm import AgentConfig, LLMAgent
from selfgym.agents.models import tiny_model_dir
from selfgym.agents.testing import FunctionPolicy
from selfgym.config import load_toml
from selfgym.errors import ConfigError
from selfgym.run.evaluate import evaluate_tasks, first_attempt, first_attempt_scores
from selfgym.run.loop import train
from selfgym.run.loopconfig import RunConfig
from selfgym.run.report import write_report
from selfgym.store import Store
from selfgym.trainers.run import candidate_trajectories


def _code_tasks(n: int):
    return list(selfgym.make_task_source("code").tasks("heldout", limit=n))


def test_first_attempt_is_told_apart_from_a_later_attempt_on_real_code_episodes():
    """Half the tasks are solved at once, half only after the test feedback of a wrong first try:
    within 2 attempts every task is solved, on the first attempt half are."""
    tasks = _code_tasks(6)
    late = {t.id for t in tasks[::2]}

    def reply(chat):
        task = next(t for t in tasks if t.prompt in chat[1]["content"] or chat[1]["content"] in t.prompt)
        feedback = len([m for m in chat if m["role"] == "user"]) > 1
        if task.id in late and not feedback:
            return f"```python\ndef {task.payload['entry_point']}(*args):\n    return 'wrong'\n```"
        return f"```python\n{task.payload['reference']}\n```"

    agent = LLMAgent(FunctionPolicy(reply), AgentConfig())
    scores, result = evaluate_tasks(lambda: selfgym.make("selfgym/Code-v0", max_attempts=2), agent, tasks,
                                    progress=False)
    assert scores.success_rate == 1.0
    firsts = {t.task_id: first_attempt(t) for t in result.trajectories}
    assert firsts == {t.id: t.id not in late for t in tasks}
    summary = first_attempt_scores(result.trajectories)
    assert summary["success_rate"] == pytest.approx(0.5) and set(summary["outcomes"]) == {t.id for t in tasks}
    late_traj = next(t for t in result.trajectories if t.task_id in late)
    assert [turn.info["attempt"] for turn in late_traj.turns] == [1, 2]  # the env keeps the attempt on the turn


CONFIG = '''
name = "{name}"
iterations = 1
[env]
id = "selfgym/Code-v0"
families = ["arithmetic"]
difficulties = [0.0]
kwargs = {{ max_attempts = 1 }}
[policy]
model = "{model}"
device = "cpu"
[agent.sampling]
max_tokens = 8
temperature = 1.0
[rollout]
tasks_per_iteration = 2
group_size = 1
[trainer]
algorithm = "none"
[eval]
n_tasks = 2
every = 0
[[eval.transfer]]
name = "humaneval"
tasks = "humaneval"
n_tasks = 2
max_attempts = 2
[[eval.transfer]]
name = "unseen"
families = ["strings"]
n_tasks = 3
'''


def test_loop_scores_transfer_sets_before_and_after_and_reports_them(tmp_path: Path):
    model = str(tiny_model_dir())
    (tmp_path / "run.toml").write_text(CONFIG.format(name="xfer", model=model))
    config = load_toml(tmp_path / "run.toml", RunConfig)
    result = train(config, tmp_path / "run")
    assert set(result.heldout) == {0, 1}  # the held-out series is not mixed with the transfer sets
    store = Store(tmp_path / "run")
    assert [e["split"] for e in store.evals("xfer")] == ["heldout", "heldout"]
    transfer = store.evals("xfer", transfer=True)
    assert sorted((e["split"], e["iteration"]) for e in transfer) == [
        ("transfer:humaneval", 0), ("transfer:humaneval", 1), ("transfer:unseen", 0), ("transfer:unseen", 1)]
    he = [e for e in transfer if e["split"] == "transfer:humaneval"]
    humaneval_ids = {t.id for t in selfgym.make_task_source("humaneval").tasks("heldout", limit=2)}
    assert all(set(e["metrics"]["outcomes"]) == humaneval_ids for e in he)
    assert all(e["metrics"]["max_attempts"] == 2 and "first_attempt" in e["metrics"] for e in he)
    unseen = [e for e in transfer if e["split"] == "transfer:unseen"]
    assert all(t.startswith("strings/") for e in unseen for t in e["metrics"]["outcomes"])
    assert all(e["metrics"]["max_attempts"] == 1 for e in unseen)  # the env's own setting
    keys = {(it, k) for it, k, _ in store.metrics("xfer")}
    assert {(0, "transfer/humaneval/first_attempt"), (1, "transfer/unseen/within_attempts")} <= keys
    page = write_report(tmp_path / "run", "xfer").read_text()
    assert "id='transfer'" in page and "within 2 attempts" in page and "unseen" in page
    # every evaluation's episodes are stored, under runs of their own that no trainer reads
    stored = {name: store.trajectories(run_id=f"xfer/{name}")
              for name in ("eval", "transfer/humaneval", "transfer/unseen")}
    assert {name: sorted((t.iteration, t.task_id) for t in trajs) for name, trajs in stored.items()} == {
        name: sorted((it, task) for it in (0, 1) for task in outcomes)
        for name, outcomes in (("eval", store.evals("xfer")[0]["metrics"]["outcomes"]),
                               ("transfer/humaneval", he[0]["metrics"]["outcomes"]),
                               ("transfer/unseen", unseen[0]["metrics"]["outcomes"]))}
    assert all((store.run(f"xfer/{name}") or {}).get("kind") == "eval" for name in stored)
    assert all(t.turns and t.turns[0].completion_ids for trajs in stored.values() for t in trajs)
    kept, stats = candidate_trajectories(store)  # the whole store, as `selfgym train --store` reads it
    assert kept and {t.run_id for t in kept} == {"xfer"}
    assert stats["data/left_out_eval"] == sum(len(trajs) for trajs in stored.values())
    assert write_report(tmp_path / "run") == write_report(tmp_path / "run", "xfer")  # the loop run, not its evals
    # a resumed run does not evaluate a stored transfer set again
    n = len(store.evals("xfer", transfer=None))
    train(config, tmp_path / "run", resume=True)
    assert len(store.evals("xfer", transfer=None)) == n


def test_transfer_names_must_differ(tmp_path: Path):
    text = CONFIG.format(name="dup", model="x").replace('name = "unseen"', 'name = "humaneval"')
    (tmp_path / "run.toml").write_text(text)
    with pytest.raises(ConfigError, match="eval.transfer names must differ"):
        load_toml(tmp_path / "run.toml", RunConfig)


def test_the_teacher_keeps_away_from_every_transfer_set(tmp_path: Path):
    """The tasks the teacher's proposals are screened against include all of HumanEval (not only the
    tasks scored) and the unseen families' held-out tasks."""
    from rich.console import Console

    from selfgym.run.assemble import open_run
    from selfgym.run.stages import protected_tasks

    (tmp_path / "run.toml").write_text(CONFIG.format(name="prot", model=str(tiny_model_dir())))
    run = open_run(load_toml(tmp_path / "run.toml", RunConfig), tmp_path / "run", Console(quiet=True))
    ids = {t.id for t in protected_tasks(run)}
    run.env.close()
    humaneval = {t.id for t in selfgym.make_task_source("humaneval").tasks("heldout")}
    assert len(humaneval) == 164 and humaneval <= ids
    assert any(i.startswith("strings/") for i in ids) and any(i.startswith("arithmetic/") for i in ids)


def test_a_protected_source_is_kept_from_the_teacher_without_being_scored(tmp_path: Path):
    """``eval.protect`` screens the teacher's proposals against a benchmark the run does not score
    (a sweep that scores HumanEval only for the runs it picks still never teaches near it)."""
    from rich.console import Console

    from selfgym.run.assemble import open_run
    from selfgym.run.stages import protected_tasks

    text = CONFIG.format(name="guard", model=str(tiny_model_dir()))
    text = text[:text.index("[[eval.transfer]]")] + 'protect = ["humaneval"]\n'
    (tmp_path / "run.toml").write_text(text)
    config = load_toml(tmp_path / "run.toml", RunConfig)
    assert config.eval.transfer == [] and config.eval.protect == ["humaneval"]
    run = open_run(config, tmp_path / "run", Console(quiet=True))
    ids = {t.id for t in protected_tasks(run)}
    run.env.close()
    humaneval = {t.id for t in selfgym.make_task_source("humaneval").tasks("heldout")}
    assert humaneval <= ids
    (tmp_path / "bad.toml").write_text(text.replace('"humaneval"]', '"humaneva"]'))
    bad = open_run(load_toml(tmp_path / "bad.toml", RunConfig), tmp_path / "bad", Console(quiet=True))
    with pytest.raises(ConfigError, match="humaneva"):
        protected_tasks(bad)
    bad.env.close()


def test_evaluations_can_score_a_bfloat16_copy_while_training_keeps_float32(tmp_path: Path):
    """``eval.dtype``: the held-out and transfer evaluations generate with a bfloat16 copy of the
    current weights (faster on a CPU), say so in their stored metrics, and the policy the loop trains
    keeps its float32 weights."""
    import torch
    from rich.console import Console

    from selfgym.run import stages
    from selfgym.run.assemble import open_run

    text = CONFIG.format(name="half", model=str(tiny_model_dir())).replace("[eval]\n", '[eval]\ndtype = "bfloat16"\n')
    (tmp_path / "run.toml").write_text(text)
    config = load_toml(tmp_path / "run.toml", RunConfig)
    assert config.eval.dtype == "bfloat16"
    run = open_run(config, tmp_path / "run", Console(quiet=True))
    try:
        weights = {k: v.clone() for k, v in run.policy.model.state_dict().items()}
        assert stages._eval_agent(run).policy.model.dtype == torch.bfloat16
        stages.evaluate_heldout(run, 0)
        stages.evaluate_transfer(run, 0)
        assert run.policy.model.dtype == torch.float32 and run.agent.policy is run.policy
        assert all(torch.equal(v, weights[k]) for k, v in run.policy.model.state_dict().items())
    finally:
        run.close()
    evals = Store(tmp_path / "run").evals("half", transfer=None)
    assert len(evals) == 3 and {e["metrics"]["dtype"] for e in evals} == {"bfloat16"}
    plain = CONFIG.format(name="plain", model=str(tiny_model_dir()))
    (tmp_path / "plain.toml").write_text(plain)
    run = open_run(load_toml(tmp_path / "plain.toml", RunConfig), tmp_path / "plain", Console(quiet=True))
    try:
        assert stages._eval_agent(run).policy is run.policy  # no copy without eval.dtype
        assert stages.eval_dtype(run) == "float32"
    finally:
        run.close()
    (tmp_path / "bad.toml").write_text(text.replace('dtype = "bfloat16"', 'dtype = "int4"'))
    with pytest.raises(ConfigError, match="eval.dtype must be"):
        load_toml(tmp_path / "bad.toml", RunConfig)


def test_an_evaluation_killed_part_way_resumes_with_the_episodes_it_finished(tmp_path: Path):
    """The store holds the episodes an interrupted held-out evaluation finished (the first two of
    its tasks, from the same weights): the resumed evaluation plays only the other tasks, so no task
    has two episodes, and scores all of them. Episodes of other weights are not reused."""
    from rich.console import Console

    from selfgym.run import stages
    from selfgym.run.assemble import open_run
    from selfgym.seeds import derive_seed

    text = CONFIG.format(name="cut", model=str(tiny_model_dir())).replace("n_tasks = 2\nevery", "n_tasks = 4\nevery")
    (tmp_path / "run.toml").write_text(text)
    config = load_toml(tmp_path / "run.toml", RunConfig)
    run = open_run(config, tmp_path / "run", Console(quiet=True))
    try:
        tasks = stages.eval_tasks(run.eval_source, "heldout", 4, config.env.families, [])
        run_id = stages._eval_run(run, "eval", split="heldout")
        stages._evaluate(run, run_id, 0, run.make_eval_env, stages._eval_agent(run), tasks[:2], k=1,
                         seed=derive_seed(config.seed, "eval", 0))  # what the killed evaluation finished
        finished = {t.task_id: t.id for t in run.store.trajectories(run_id=run_id)}
        other = run.store.trajectories(run_id=run_id)[0]  # and one episode of other weights
        other.id, other.task_id, other.policy_id = "other-weights", tasks[3].id, "ckpt-old"
        run.store.add_trajectory(other)
        stages.evaluate_heldout(run, 0)
    finally:
        run.close()
    store = Store(tmp_path / "run")
    mine = [t for t in store.trajectories(run_id="cut/eval") if t.policy_id != "ckpt-old"]
    assert sorted(t.task_id for t in mine) == sorted(t.id for t in tasks)  # one episode per task
    assert {t.task_id: t.id for t in mine if t.task_id in finished} == finished  # kept, not replayed
    [stored] = store.evals("cut")
    assert set(stored["metrics"]["outcomes"]) == {t.id for t in tasks} and stored["metrics"]["n_tasks"] == 4
