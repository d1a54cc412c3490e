"""Reflections: stored in the run store, retrieved for the same and similar tasks, written after failures,
and the test-time retry loop that uses them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from selfgym.agents.llm import AgentConfig, LLMAgent
from selfgym.agents.policy import SamplingParams
from selfgym.agents.reflection import (
    ReflectionConfig,
    ReflectionMemory,
    ReflectionWriter,
    Reflector,
    reflection_prompt,
)
from selfgym.agents.testing import CountingPolicy, FunctionPolicy
from selfgym.errors import ConfigError
from selfgym.run.rollout import RolloutConfig, run_rollouts
from selfgym.run.testtime import RetryConfig, evaluate_with_retries
from selfgym.store import Store
from selfgym.types import Task


def task(task_id: str, prompt: str, family: str = "guess", split: str = "train") -> Task:
    return Task(id=task_id, family=family, prompt=prompt, split=split)  # type: ignore[arg-type]


A = task("a", "I am thinking of an integer between 1 and 64. Guess it.")
B = task("b", "I am thinking of an integer between 1 and 512. Guess it.")
C = task("c", "Sort the list of words by length.", family="sorting")
D = task("d", "I am thinking of an integer between 1 and 100. Guess it.")


def test_reflections_live_in_the_store_and_come_back_for_the_same_and_similar_tasks(tmp_path: Path) -> None:
    store = Store(tmp_path)
    memory = ReflectionMemory(store, ReflectionConfig(max_in_prompt=5), run_id="run-1")
    for i in range(3):
        memory.add(A, f"lesson a{i}", trajectory_id=f"t{i}", policy_id="p")
    memory.add(B, "lesson b0")
    memory.add(C, "lesson c0")
    rows = store.memory("reflection", key="a")
    assert [r["text"] for r in rows] == ["lesson a0", "lesson a1", "lesson a2"]
    assert rows[0]["family"] == "guess" and rows[0]["trajectory_id"] == "t0" and rows[0]["run_id"] == "run-1"
    assert [n.text for n in memory.retrieve(A, 2)] == ["lesson a2", "lesson a1"]  # own lessons, newest first
    assert [n.text for n in memory.retrieve(A, 5)] == ["lesson a2", "lesson a1", "lesson a0", "lesson b0"]
    assert [n.text for n in memory.retrieve(D, 5)][0] in ("lesson b0", "lesson a2")  # same family only
    assert "lesson c0" not in [n.text for n in memory.retrieve(D, 5)]
    assert [n.text for n in memory.retrieve(C, 5)] == ["lesson c0"]
    reopened = ReflectionMemory(Store(tmp_path), ReflectionConfig(scope="task"))  # persisted, task scope
    assert [n.text for n in reopened.retrieve(A, 9)] == ["lesson a2", "lesson a1", "lesson a0"]
    assert reopened.retrieve(D, 3) == []
    capped = ReflectionMemory(store, ReflectionConfig(max_in_prompt=1))
    assert len(capped.retrieve(A, 3)) == 1


def test_switched_off_empty_and_held_out_reflections(tmp_path: Path) -> None:
    off = ReflectionMemory(Store(tmp_path), ReflectionConfig(enabled=False))
    assert off.add(A, "a lesson") is None and off.retrieve(A, 3) == [] and off.items() == []
    store = Store(tmp_path / "other")
    memory = ReflectionMemory(store)
    assert memory.add(A, "   \n ") is None  # an empty reply is not a lesson
    held = task("h", "I am thinking of an integer between 1 and 8. Guess it.", split="heldout")
    with pytest.raises(ConfigError, match="held out"):
        memory.add(held, "never stored")
    assert store.memory("reflection") == []
    with pytest.raises(ConfigError, match="max_in_prompt"):
        ReflectionConfig(max_in_prompt=-1)
    local = ReflectionMemory(None)
    assert local.add(held, "kept in this process").text == "kept in this process"
    assert [n.text for n in local.retrieve(held, 3)] == ["kept in this process"]


def bounds(text: str) -> tuple[int, int]:
    """The interval a Guess chat allows: the task range narrowed by feedback and by lessons."""
    low, high = 1, int(re.search(r"between 1 and (\d+)", text).group(1))
    for x in re.findall(r"greater than (-?\d+)", text):
        low = max(low, int(x) + 1)
    for x in re.findall(r"less than (-?\d+)", text):
        high = min(high, int(x) - 1)
    return low, high


def guess_with_lessons(chat: list[dict[str, str]]) -> str:
    low, high = bounds("\n".join(m["content"] for m in chat))
    return str((low + high) // 2)


def write_lesson(chat: list[dict[str, str]]) -> str:
    low, high = bounds(chat[-1]["content"])
    return f"The number is greater than {low - 1} and less than {high + 1}."


def test_writer_reflects_on_failures_and_the_next_attempt_reads_the_lessons(tmp_path: Path) -> None:
    store = Store(tmp_path)
    memory = ReflectionMemory(store, ReflectionConfig(scope="task"), run_id="r")  # other secrets would mislead
    reflector_policy = CountingPolicy(FunctionPolicy(write_lesson, name="reflector"))
    writer = ReflectionWriter(Reflector(reflector_policy), memory)
    agent = LLMAgent(FunctionPolicy(guess_with_lessons), AgentConfig(sampling=SamplingParams(max_tokens=8)),
                     memory=[memory])
    config = RolloutConfig(group_size=2, progress=False)
    first = run_rollouts("selfgym/Guess-v0", agent, 4, config, store=store, on_step_end=writer,
                         env_kwargs={"max_episode_steps": 2, "difficulty": 0.6}, run_id="r")
    failed = [t for t in first.trajectories if not t.success]
    assert failed and len(memory.items()) == len(failed)  # one lesson per failure, none for successes
    assert {r["trajectory_id"] for r in memory.items()} == {t.id for t in failed}
    assert sum(reflector_policy.calls) == len(failed) and len(reflector_policy.calls) <= first.steps
    prompt = reflection_prompt(A, failed[0])[-1]["content"]
    assert "Your action: " in prompt and "Feedback: " in prompt and "Outcome: the turn budget ran out." in prompt
    tasks = [store.task(t.task_id) for t in failed]
    second = run_rollouts("selfgym/Guess-v0", agent, tasks, RolloutConfig(progress=False),
                          env_kwargs={"max_episode_steps": 2, "difficulty": 0.6})
    tokenizer = FunctionPolicy(guess_with_lessons).tokenizer
    for before, traj in zip(failed, second.trajectories, strict=True):
        own = {r["id"] for r in memory.items(traj.task_id)}
        assert own and own <= set(traj.memory["reflection"])  # the task's lessons were in the prompt
        lesson = memory.items(traj.task_id)[-1]["text"]
        assert lesson in tokenizer.decode(traj.turns[0].prompt_ids)
        low, high = bounds("between 1 and 100000 " + lesson)
        assert low <= int(traj.turns[0].action) <= high  # the first guess already uses the lesson
        assert traj.turns[0].action != before.turns[0].action


def test_test_time_retries_are_reported_apart_from_pass_at_k(tmp_path: Path) -> None:
    from selfgym.envs.guess import GuessTasks

    tasks = list(GuessTasks().tasks("heldout", limit=6))
    tasks = [Task(**{**t.to_dict(), "prompt": t.prompt.replace("between 1 and 8", "between 1 and 64"),
                     "payload": {**t.payload, "high": 64, "secret": t.payload["secret"] * 7}}) for t in tasks]
    agent = LLMAgent(FunctionPolicy(guess_with_lessons), AgentConfig(sampling=SamplingParams(max_tokens=8)))
    store = Store(tmp_path)

    def env():
        import selfgym

        return selfgym.make("selfgym/Guess-v0", max_episode_steps=2)

    result = evaluate_with_retries(env, agent, tasks, k=2, retry=RetryConfig(rounds=3),
                                   reflector=Reflector(FunctionPolicy(write_lesson)), store=store, run_id="eval")
    assert result.plain.k == 2 and result.plain.n_tasks == 6
    assert result.solved_plain == result.plain.pass_at_k["pass@2"]  # plain scores are plain pass@k
    assert result.solved_with_retries > result.solved_plain
    assert [r["round"] for r in result.rounds] == list(range(1, len(result.rounds) + 1))
    phases = {t.info["phase"] for t in result.trajectories}
    assert phases >= {"plain", "retry1"}
    retried = [t for t in result.trajectories if t.info["phase"] == "retry1"]
    assert all(t.attempt == 2 and t.memory.get("reflection") for t in retried)
    assert store.count_trajectories(run_id="eval") == len(result.trajectories)
    assert store.memory("reflection") == []  # held-out lessons never enter the store
    assert result.to_dict()["solved_with_retries"] == result.solved_with_retries
