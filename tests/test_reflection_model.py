"""Reflections written by a real model (the tiny random Llama): what the store keeps is the model's own
lesson for each failed episode, and the next attempt at the task is prompted with it."""

from __future__ import annotations

from pathlib import Path

from selfgym.agents.llm import AgentConfig, LLMAgent
from selfgym.agents.policy import SamplingParams
from selfgym.agents.reflection import (
    ReflectionConfig,
    ReflectionMemory,
    ReflectionWriter,
    Reflector,
    reflection_prompt,
)
from selfgym.agents.testing import CountingPolicy, tiny_policy
from selfgym.run.rollout import RolloutConfig, run_rollouts
from selfgym.store import Store

ENV = {"max_episode_steps": 2}


def test_the_models_own_lessons_are_stored_per_failure_and_prompt_the_next_attempt(tmp_path: Path) -> None:
    store = Store(tmp_path)
    # sampled, seeded: the random tiny model's greedy reply is blank lines (an empty lesson is dropped)
    config = ReflectionConfig(scope="task", sampling=SamplingParams(max_tokens=12, temperature=1.0, seed=3))
    memory = ReflectionMemory(store, config, run_id="r")
    reflector = CountingPolicy(tiny_policy())
    writer = ReflectionWriter(Reflector(reflector, config), memory)
    agent = LLMAgent(tiny_policy(), AgentConfig(sampling=SamplingParams(max_tokens=4, temperature=1.0)))
    first = run_rollouts("selfgym/Guess-v0", agent, 3, RolloutConfig(progress=False, seed=1), store=store,
                         on_step_end=writer, env_kwargs=ENV, run_id="r")
    failed = [t for t in first.trajectories if not t.success]
    assert failed  # a random model rarely finds the number in two guesses
    lessons = memory.items()  # in the order written
    by_id = {t.id: t for t in failed}
    assert {r["trajectory_id"] for r in lessons} == set(by_id) and reflector.calls == [len(failed)]  # one batch
    # each lesson is what the model writes when shown that episode, not a template or a placeholder
    prompts = [reflection_prompt(store.task(r["task_id"]), by_id[r["trajectory_id"]], config.max_turns_shown)
               for r in lessons]
    again = tiny_policy().generate(prompts, config.sampling)
    assert [r["text"] for r in lessons] == [" ".join(c.text.split())[: config.max_chars].rstrip() for c in again]
    for lesson in lessons:
        assert lesson["text"] and lesson["family"] == "guess"
        assert lesson["task_id"] == by_id[lesson["trajectory_id"]].task_id
    shown = agent.with_memory([memory])
    second = run_rollouts("selfgym/Guess-v0", shown, [store.task(t.task_id) for t in failed],
                          RolloutConfig(progress=False), env_kwargs=ENV)
    tokenizer = tiny_policy().tokenizer
    for traj in second.trajectories:
        (lesson,) = memory.items(traj.task_id)
        assert traj.memory["reflection"] == [lesson["id"]]
        assert lesson["text"] in tokenizer.decode(traj.turns[0].prompt_ids)  # the model was fed its lesson
