"""The teacher with a scripted policy, the real bwrap sandbox and a real SQLite store."""

from __future__ import annotations

import pytest
from test_generators_env import PatternSolver
from test_generators_proposal import VOWELS

import selfgym
from selfgym.agents.teacher import METRICS, Teacher, TeacherConfig
from selfgym.agents.testing import FunctionPolicy
from selfgym.config import from_dict
from selfgym.envs.code.families import FAMILIES
from selfgym.envs.generators.context import EXAMPLE_PROPOSAL, oracle_proposal
from selfgym.envs.generators.proposal import PROPOSAL_FORMAT, Proposal, parse_proposal, render_proposal
from selfgym.errors import ConfigError
from selfgym.run.passrates import rollout_pass_rates
from selfgym.store import Store
from selfgym.types import Task, Trajectory, Turn

LISTS = FAMILIES["lists"]
DIGITS = render_proposal(Proposal(
    instruction="Return the sum of the decimal digits of the non-negative integer n.", entry_point="digit_sum",
    tests=("assert digit_sum(0) == 0", "assert digit_sum(907) == 16", "assert digit_sum(11111) == 5"),
    reference="def digit_sum(n):\n    return sum(int(d) for d in str(n))\n",
    failing=("def digit_sum(n):\n    return n % 10\n",)))
HELDOUT = [t for family in FAMILIES.values() for t in family.tasks("heldout", limit=5)]


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "store.sqlite") as store:
        yield store


def failure(task: Task, answer: str = "```python\ndef f():\n    pass\n```") -> Trajectory:
    return Trajectory(task_id=task.id, env_id="selfgym/Code-v0", success=False,
                      turns=[Turn(observation=task.prompt, action=answer)],
                      info={"final_observation": "Attempt 3 of 3 failed. 0/6 tests passed. No attempts left."})


def teacher(store: Store, replies, **config) -> Teacher:
    """The LLM teacher alone (``tests/test_mutate.py`` covers the mutation candidates)."""
    config.setdefault("mutation", "off")
    replies = list(replies) if isinstance(replies, list) else None
    reply = (lambda chat: replies.pop(0)) if replies is not None else (lambda chat: "")
    return Teacher(FunctionPolicy(reply, name="scripted-teacher"), TeacherConfig(enabled=True, **config),
                   store=store, run_id="run-1", teacher_id="teacher-1")


def setup_tasks(n: int = 4) -> tuple[Task, dict[str, Task]]:
    tasks = list(LISTS.tasks("train", limit=n))
    return tasks[0], {t.id: t for t in tasks}


def counts(metrics: dict[str, float]) -> dict[str, int]:
    return {k.removeprefix("teacher/"): int(v) for k, v in metrics.items() if v}


def test_valid_proposal_is_accepted_and_stored_with_lineage(store):
    parent, tasks = setup_tasks()
    result = teacher(store, [render_proposal(oracle_proposal(parent))], proposals_per_iteration=1,
                     solver_attempts=4).propose([failure(parent)], tasks, iteration=3, heldout=HELDOUT,
                                                pass_rates=rollout_pass_rates(PatternSolver([True, False])))
    assert counts(result.metrics) == {"proposed": 1, "valid": 1, "accepted": 1, "accepted_llm": 1}
    assert set(result.metrics) == set(METRICS)
    (task,) = result.accepted
    assert store.tasks(split="generated") == [task]
    assert task.split == "generated" and task.parent_id == parent.id and task.source == "teacher:teacher-1"
    assert task.difficulty == pytest.approx(0.5)  # 1 - pass rate
    generator = task.payload["generator"]
    assert generator["teacher_id"] == "teacher-1" and generator["run_id"] == "run-1"
    assert generator["iteration"] == 3 and generator["pass_rate"] == 0.5 and generator["target_family"] == "lists"
    assert generator["method"] == "llm" and generator["parents"] == [parent.id]
    env = selfgym.make("selfgym/Code-v0")  # the stored task plays in the code env unchanged
    try:
        env.reset(options={"task": store.task(task.id)})
        assert env.step(env.unwrapped.oracle_action())[1] == 1.0
    finally:
        env.close()


def test_invalid_proposal_is_rejected_with_the_reason(store):
    parent, tasks = setup_tasks()
    proposal = oracle_proposal(parent)
    broken = Proposal(instruction=proposal.instruction, entry_point=proposal.entry_point, tests=proposal.tests,
                      reference=proposal.reference.replace("for args in calls]", "for args in calls[1:]]"),
                      failing=proposal.failing)
    result = teacher(store, [render_proposal(broken)], proposals_per_iteration=1).propose(
        [failure(parent)], tasks, iteration=0, pass_rates=None, heldout=HELDOUT)
    assert counts(result.metrics) == {"proposed": 1, "rejected_invalid": 1}
    assert result.accepted == [] and store.tasks(split="generated") == []
    assert result.records[0].reason.startswith("the reference fails its own tests: ")
    assert "returned" in result.records[0].reason or "failed" in result.records[0].reason


def test_unparseable_proposal_counts_as_invalid(store):
    parent, tasks = setup_tasks()
    result = teacher(store, ["Sure! Here is a task: write a sort function."], proposals_per_iteration=1).propose(
        [failure(parent)], tasks, iteration=0, pass_rates=None, heldout=HELDOUT)
    assert counts(result.metrics) == {"proposed": 1, "rejected_invalid": 1}
    assert result.records[0].reason.startswith("does not parse: no sections found")


def test_heldout_near_copy_is_rejected_by_decontamination(store):
    parent, tasks = setup_tasks()
    original = HELDOUT[7]
    ep = original.payload["entry_point"]
    copy = Proposal(instruction=original.prompt.splitlines()[1] + " Try it on a few inputs.", entry_point=ep,
                    tests=tuple(f"assert {ep}{t['args']} == {t['expected']}" for t in original.payload["tests"][-3:]),
                    reference=original.payload["reference"], failing=(f"def {ep}(*args):\n    return None\n",))
    result = teacher(store, [render_proposal(copy)], proposals_per_iteration=1).propose(
        [failure(parent)], tasks, iteration=0, pass_rates=None, heldout=HELDOUT)
    assert counts(result.metrics) == {"proposed": 1, "valid": 1, "rejected_decontam": 1}
    assert result.records[0].status == "decontam" and "word n-gram overlap with task" in result.records[0].reason
    assert store.tasks(split="generated") == []


def test_duplicates_and_unlearnable_tasks_are_rejected(store):
    parent, tasks = setup_tasks()
    text = render_proposal(oracle_proposal(parent))
    result = teacher(store, [text, text], proposals_per_iteration=2).propose(
        [failure(parent)], tasks, iteration=0, pass_rates=None, heldout=HELDOUT)
    assert counts(result.metrics) == {"proposed": 2, "valid": 2, "accepted": 1, "accepted_llm": 1,
                                      "rejected_duplicate": 1}
    # the stored task protects later iterations too, the prompt's worked example is protected, and a
    # new task the solver always solves is too easy
    other = list(tasks.values())[1]
    result = teacher(store, [text, VOWELS, DIGITS], proposals_per_iteration=3).propose(
        [failure(parent), failure(other)], tasks, iteration=1, pass_rates=rollout_pass_rates(PatternSolver([True])), heldout=HELDOUT)
    assert counts(result.metrics) == {"proposed": 3, "valid": 3, "rejected_duplicate": 2, "rejected_learnability": 1}
    assert "format-example/" in result.records[1].reason
    assert "solver pass rate 1.00" in result.records[2].reason


def test_band_reward_accepts_inside_the_band(store):
    parent, tasks = setup_tasks()
    config = {"proposals_per_iteration": 1, "solver_attempts": 4, "reward": "band", "band_lo": 0.2, "band_hi": 0.3}
    result = teacher(store, [render_proposal(oracle_proposal(parent))], **config).propose(
        [failure(parent)], tasks, iteration=0, heldout=HELDOUT,
        pass_rates=rollout_pass_rates(PatternSolver([True, False, False, False])))
    assert counts(result.metrics)["accepted"] == 1 and result.accepted[0].difficulty == pytest.approx(0.75)


def test_one_batched_generate_over_contexts_that_never_show_heldout_tasks(store):
    parent, tasks = setup_tasks()
    second = list(tasks.values())[1]
    secret = HELDOUT[0]
    tasks[secret.id] = secret
    seen: list[list[dict[str, str]]] = []
    policy = FunctionPolicy(lambda chat: seen.append(chat) or "no proposal", name="scripted-teacher")
    teach = Teacher(policy, TeacherConfig(proposals_per_iteration=3, examples_per_context=2, mutation="off"),
                    store=store, run_id="run-1", teacher_id="teacher-1")
    failures = [failure(parent, "```python\ndef wrong_answer():\n    return 42\n```"), failure(second), failure(secret)]
    result = teach.propose(failures, tasks, iteration=0, pass_rates=None, heldout=HELDOUT)
    assert policy.calls == [3] and result.metrics["teacher/proposed"] == 3
    system, example, answer, user = seen[0]
    assert system["role"] == "system" and "exact format" in system["content"]
    assert "count_char" in example["content"] and parse_proposal(answer["content"]) == EXAMPLE_PROPOSAL
    assert user["content"].startswith("You write new practice tasks for a student learning Python (lists tasks).")
    assert parent.prompt in user["content"] and "def wrong_answer():" in user["content"]
    assert "Feedback:\nAttempt 3 of 3 failed." in user["content"] and user["content"].endswith(PROPOSAL_FORMAT)
    failed = [chat[3]["content"].split("## Failed task 1\n")[1].split("\n")[1] for chat in seen]
    assert failed == [parent.prompt.splitlines()[0], second.prompt.splitlines()[0], parent.prompt.splitlines()[0]]
    assert not any(secret.prompt in message["content"] for chat in seen for message in chat)


def test_no_failures_means_no_generation(store):
    teach = teacher(store, [])
    result = teach.propose([], {}, iteration=0, pass_rates=None, heldout=HELDOUT)
    assert teach.policy.calls == [] and result.accepted == [] and not any(result.metrics.values())


def test_config_checks_and_toml_shape():
    config = from_dict(TeacherConfig, {"enabled": True, "reward": "band", "band_lo": 0.2, "band_hi": 0.6,
                                       "decontam": {"ngram": 6, "max_overlap": 0.3}})
    assert config.decontam.ngram == 6 and config.env_config().band_hi == 0.6
    with pytest.raises(ConfigError, match="band_lo <= band_hi"):
        TeacherConfig(reward="band", band_lo=0.8, band_hi=0.2)
    with pytest.raises(ConfigError, match="reward must be 'learnability' or 'band'"):
        TeacherConfig(reward="variance")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="solver_attempts must be >= 1"):
        TeacherConfig(solver_attempts=0)
    with pytest.raises(ConfigError, match="teacher.mutation must be 'off', 'fallback' or 'always'"):
        TeacherConfig(mutation="sometimes")  # type: ignore[arg-type]


def test_a_proposal_whose_solver_episodes_all_abort_is_counted_not_accepted(store):
    """The same rule as ProposeTask-v0 (one judge): a NaN pass rate is not judged, never accepted."""
    import socket

    from selfgym.agents.llm import AgentConfig, LLMAgent
    from selfgym.agents.openai_policy import OpenAIConfig, OpenAIPolicy
    from selfgym.types import SamplingParams

    with socket.socket() as sock:  # a port nothing listens on: every solver episode aborts
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = LLMAgent(OpenAIPolicy(OpenAIConfig(base_url=f"http://127.0.0.1:{port}/v1", model="solver", max_retries=0)),
                    AgentConfig(sampling=SamplingParams(max_tokens=16)))
    parent, tasks = setup_tasks()
    result = teacher(store, [render_proposal(oracle_proposal(parent))], proposals_per_iteration=1,
                     solver_attempts=2).propose([failure(parent)], tasks, iteration=0, heldout=HELDOUT,
                                                pass_rates=rollout_pass_rates(dead))
    assert counts(result.metrics) == {"proposed": 1, "valid": 1, "aborted": 1}
    assert result.accepted == [] and store.tasks(split="generated") == []
    assert result.records[0].status == "aborted" and result.records[0].pass_rate is None
    assert result.records[0].reason == "every one of the 2 solver episodes was aborted"
