"""``selfgym/ProposeTask-v0`` with the real bwrap sandbox: validity, learnability, novelty, the oracle."""

from __future__ import annotations

import re
import warnings
from typing import Any

import pytest
from gymnasium.utils.env_checker import check_env
from test_generators_proposal import VOWELS

import selfgym
from selfgym.envs.generators.context import ContextSource, oracle_proposal
from selfgym.envs.generators.proposal import parse_proposal, proposal_task, render_proposal
from selfgym.envs.generators.reward import band, learnability, learnability_factor
from selfgym.run.passrates import rollout_pass_rates
from selfgym.types import Completion, Task


class PatternSolver:
    """Solves the episodes whose entry in ``pattern`` is True (cycling), with the task's reference."""

    name = "pattern"

    def __init__(self, pattern: list[bool]) -> None:
        self.pattern = pattern
        self.episodes = 0
        self.right = False
        self.task: Task | None = None

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        self.right = self.pattern[self.episodes % len(self.pattern)]
        self.episodes += 1
        self.task = info["task"]

    def act(self, observation: str, info: dict[str, Any]) -> Completion:
        assert self.task is not None
        payload = self.task.payload
        code = payload["reference"] if self.right else f"def {payload['entry_point']}(*args):\n    return None\n"
        return Completion(text=f"```python\n{code}```")


@pytest.fixture
def env():
    env = selfgym.make("selfgym/ProposeTask-v0")
    yield env
    env.close()


def test_check_env_passes(env):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gymnasium's checker reports problems as warnings
        check_env(env.unwrapped, skip_render_check=True)


def test_same_seed_same_context(env):
    first, _ = env.reset(seed=11)
    again, info = env.reset(seed=11)
    assert first == again
    assert "## Failed task 1" in first and "### Failing examples" in first
    assert info["task"].payload["parent"]["split"] == "train"


def test_oracle_scores_one_and_empty_reply_scores_zero(env):
    env.reset(seed=5)
    _, reward, terminated, _, info = env.step(env.unwrapped.oracle_action())
    assert (reward, terminated, info["valid"]) == (1.0, True, True)
    env.reset(seed=5)
    observation, reward, terminated, _, info = env.step("")
    assert reward == 0.0 and not terminated and info["action_error"]
    assert observation.startswith("Invalid action: no sections found")


def test_reference_that_fails_is_rejected_with_the_failing_test(env):
    env.reset(seed=0)
    broken = VOWELS.replace('return sum(ch in "aeiou" for ch in s)', 'return sum(ch in "aeio" for ch in s)')
    observation, reward, terminated, _, info = env.step(broken)
    assert reward == 0.0 and terminated and not info["valid"]
    assert "the reference fails its own tests: 2/3 tests passed" in info["reason"]
    # the failing test is named, with the value the reference gave
    assert re.search(r'count_vowels\(\s*"queue"\s*\) == 4 failed: got 2, expected 4', info["reason"]), info["reason"]
    assert observation.startswith("Rejected (invalid)")


def test_failing_example_the_tests_miss_is_rejected(env):
    env.reset(seed=0)
    lenient = VOWELS.replace("    return len(s)", '    return sum(ch in "aeiouy" for ch in s)')
    _, reward, _, _, info = env.step(lenient)
    assert reward == 0.0 and info["reason"] == "failing example 1 passes every test: the tests do not catch it"


def test_valid_proposal_becomes_a_task_code_env_plays_unchanged():
    task = proposal_task(parse_proposal(VOWELS))
    code = selfgym.make("selfgym/Code-v0")
    try:
        code.reset(options={"task": task})
        _, reward, terminated, _, _ = code.step(code.unwrapped.oracle_action())
        assert (reward, terminated) == (1.0, True)
        code.reset(options={"task": task})
        observation, reward, _, _, _ = code.step("```python\n" + task.payload["failing_examples"][0] + "```")
        assert reward == 0.0 and "count_vowels" in observation
    finally:
        code.close()


def test_learnability_reward_from_solver_attempts():
    env = selfgym.make("selfgym/ProposeTask-v0", pass_rates=rollout_pass_rates(PatternSolver([True, False, False, False])),
                       solver_attempts=4)
    try:
        env.reset(seed=2)
        _, reward, _, _, info = env.step(env.unwrapped.oracle_action())
        assert info["pass_rate"] == 0.25 and reward == pytest.approx(0.75)
        assert env.unwrapped.last_task.difficulty == pytest.approx(0.75)
    finally:
        env.close()


def test_band_reward_and_always_solved_task():
    env = selfgym.make("selfgym/ProposeTask-v0", pass_rates=rollout_pass_rates(PatternSolver([True])),
                       solver_attempts=2, reward="band",
                       band_lo=0.2, band_hi=0.8)
    try:
        env.reset(seed=2)
        _, reward, _, _, info = env.step(env.unwrapped.oracle_action())
        assert info["pass_rate"] == 1.0 and reward == 0.0  # too easy: outside the band
    finally:
        env.close()


def test_reward_factors():
    assert learnability(0.5) == 1.0 and learnability(0.0) == 0.0 and learnability(1.0) == 0.0
    assert band(0.3, 0.2, 0.8) == 1.0 and band(0.9, 0.2, 0.8) == 0.0
    assert learnability_factor(None) == 1.0 and learnability_factor(0.25, "band", lo=0.3, hi=0.6) == 0.0


def test_near_copy_of_a_heldout_task_has_no_novelty():
    heldout = [proposal_task(parse_proposal(VOWELS), family="heldout-set")]
    env = selfgym.make("selfgym/ProposeTask-v0", heldout=heldout)
    try:
        env.reset(seed=0)
        copy = VOWELS.replace("lower-case string s", "lower case string s").replace("apple", "banana")
        copy = copy.replace('count_vowels("banana") == 2', 'count_vowels("banana") == 3')
        observation, reward, _, _, info = env.step(copy)
        assert info["valid"] and reward == 0.0 and info["reason"].startswith("decontam:")
        assert "heldout-set/" in observation
    finally:
        env.close()


def test_copying_the_failed_task_is_a_duplicate(env):
    _, info = env.reset(seed=4)
    parent = Task.from_dict(info["task"].payload["parent"])
    proposal = oracle_proposal(parent)
    same = proposal.__class__(instruction=parent.prompt.splitlines()[1] + " Keep the examples in mind.",
                              entry_point=parent.payload["entry_point"],
                              tests=tuple(f"assert {parent.payload['entry_point']}{t['args']} == {t['expected']}"
                                          for t in parent.payload["tests"][:3]),
                              reference=parent.payload["reference"],
                              failing=(f"def {parent.payload['entry_point']}(*args):\n    return None\n",))
    _, reward, _, _, info = env.step(render_proposal(same))
    assert reward == 0.0 and info["reason"].startswith("duplicate:")


def test_context_source_uses_train_parents_for_every_split():
    source = ContextSource(["lists"])
    task = next(source.tasks("heldout", limit=1))
    assert task.payload["target_family"] == "lists" and task.payload["parent"]["split"] == "train"
    assert source.get(task.id) == task
