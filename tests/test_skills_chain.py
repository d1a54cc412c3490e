"""SAGE chains through the real LLM agent, versions that keep behaviour, per-version usage, run-scoped snapshots."""

import dataclasses
import types

import pytest
from test_skills_library import GOOD, SOLUTION_A, TASK_A, TASK_B, USER_CODE, WORDS, FixedPolicy, _env

from selfgym.agents.llm import AgentConfig, LLMAgent
from selfgym.agents.testing import FunctionPolicy
from selfgym.run.chain import run_chain
from selfgym.skills import SkillCurator, SkillLibrary, SkillsConfig, parse_candidate
from selfgym.store import Store
from selfgym.trainers.grpo import GRPOConfig, turn_advantages
from selfgym.types import Completion


def coder(messages):
    """Writes USER_CODE when the prompt shows ``digit_sum`` as a skill; else solves only task A."""
    system = messages[0]["content"]
    if "from skills import digit_sum" in system and "square_digit_sum" in messages[-1]["content"]:
        return f"```python\n{USER_CODE}```"
    if "total_digits" in messages[-1]["content"]:
        return f"```python\n{SOLUTION_A}```"
    return "```python\ndef square_digit_sum(n):\n    return 0\n```"


def _library(tmp_path, run_id="r", **config):
    store = Store(tmp_path)
    store.create_run(run_id, {})
    return SkillLibrary(store, SkillsConfig(mode="read-write", **config), run_id=run_id)


def _play(library, tasks):
    curator = SkillCurator(library, FixedPolicy(GOOD), sandbox=_env().unwrapped.sandbox)
    agent = LLMAgent(FunctionPolicy(coder), AgentConfig(max_prompt_tokens=4096))

    def make_env():
        return _env().env  # a fresh Code-v0 (run_chain adds the skills module)
    return run_chain(make_env, agent, tasks, curator)


def test_a_skill_written_on_one_task_solves_the_next_in_the_chain(tmp_path):
    result = _play(_library(tmp_path, reward_bonus=0.5), [TASK_A, TASK_B])
    first, second = result.trajectories
    assert first.success and second.success and result.success_rate == 1.0
    assert (first.total_reward, second.total_reward) == (1.0, 1.5)  # the skill-integrated bonus
    # GRPO (episode score = total reward, its default) prefers the success that used the library
    plain = dataclasses.replace(second, id="plain", total_reward=1.0)
    advantages = turn_advantages([second, plain], GRPOConfig())
    assert advantages[0][0] > 0 > advantages[1][0]
    assert result.steps[0]["skills/added"] == 1 and result.steps[0]["skills/size"] == 1
    assert second.memory == {"skill": ["skill:digit_sum@v1"]}  # shown in the LLM agent's prompt
    assert second.turns[-1].info["skills_used"] == ["digit_sum"] and result.steps[1]["skills/uses"] == 1
    assert result.steps[1]["skills/proposed"] == 0  # solved with the library: nothing new to extract


def test_a_scripted_agent_in_a_chain_records_the_skills_it_was_shown(tmp_path):
    library = _library(tmp_path)
    curator = SkillCurator(library, FixedPolicy(GOOD), sandbox=_env().unwrapped.sandbox)

    class Scripted:
        """Solves task A from scratch, task B only by importing a shown ``digit_sum``."""

        name = "scripted"

        def reset(self, observation, info):
            self.task, self.shown = info["task"], library.retrieve(info["task"], 3)
            self.episode = types.SimpleNamespace(memory_ids={"skill": [s.id for s in self.shown]})

        def act(self, observation, info):
            if self.task.id == TASK_A.id:
                return Completion(text=f"```python\n{SOLUTION_A}```")
            uses = any(s.name == "digit_sum" for s in self.shown)
            return Completion(text=f"```python\n{USER_CODE if uses else 'def square_digit_sum(n):  return 0'}\n```")

    result = run_chain(lambda: _env().env, lambda env: Scripted(), [TASK_A, TASK_B], curator)
    assert [t.success for t in result.trajectories] == [True, True]
    assert [t.memory for t in result.trajectories] == [{"skill": []}, {"skill": ["skill:digit_sum@v1"]}]


def test_the_same_tasks_in_the_other_order_get_no_help(tmp_path):
    result = _play(_library(tmp_path), [TASK_B, TASK_A])
    assert [t.success for t in result.trajectories] == [False, True]
    assert result.trajectories[0].memory == {}  # the library was empty when task B ran


def test_a_same_name_candidate_that_breaks_the_old_tests_is_added_under_a_free_name(tmp_path):
    library = _library(tmp_path)
    curator = SkillCurator(library, FixedPolicy(GOOD), sandbox=_env().unwrapped.sandbox)
    assert curator.add_verified(parse_candidate(GOOD)) == "added"
    other = ('```python\ndef digit_sum(n):\n    """Number of decimal digits of n."""\n    return len(str(abs(n)))\n```\n'
             '```python\nassert digit_sum(123) == 3\n```')
    assert curator.add_verified(parse_candidate(other)) == "added"
    assert library.get("digit_sum").version == 1 and "sum(int(c)" in library.get("digit_sum").code
    renamed = library.get("digit_sum_2")
    assert renamed.tests == "assert digit_sum_2(123) == 3" and "def digit_sum_2(n)" in renamed.code
    fixed = GOOD.replace("(sign ignored)", "; negative numbers use their absolute value")
    assert curator.add_verified(parse_candidate(fixed)) == "merged" and library.get("digit_sum").version == 2


def test_a_new_version_starts_with_a_clean_usage_record(tmp_path):
    library = _library(tmp_path, retire_min_uses=2, retire_below=0.5)
    curator = SkillCurator(library, FixedPolicy(GOOD), sandbox=_env().unwrapped.sandbox)
    curator.add_verified(parse_candidate(GOOD))
    library.record_usage({"digit_sum": (3, 0)})
    assert curator.update([], {})["skills/retired"] == 1 and library.skills() == []
    assert curator.add_verified(parse_candidate(GOOD)) == "merged"  # a retired skill comes back as a new version
    skill = library.get("digit_sum")
    assert (skill.version, skill.status, skill.uses) == (2, "active", 0)
    assert curator.update([], {})["skills/retired"] == 0  # not retired for v1's failures
    assert [(v.version, v.status, v.uses) for v in library.versions("digit_sum")] == [
        (1, "active", 3), (1, "retired", 3), (2, "active", 0)]
    with pytest.raises(KeyError, match="no skill 'nope'"):
        library.record_usage({"nope": (1, 1)})


def test_snapshots_belong_to_their_run_and_a_fresh_object_sees_the_same_library(tmp_path):
    mine, theirs = _library(tmp_path, "mine"), _library(tmp_path, "theirs")
    curator = SkillCurator(theirs, FixedPolicy(GOOD), sandbox=_env().unwrapped.sandbox)
    curator.add_verified(parse_candidate(WORDS))
    theirs.snapshot("ckpt-theirs")
    assert mine.snapshots() == [] and mine.skills() == [] and [s["checkpoint_id"] for s in theirs.snapshots()] == [
        "ckpt-theirs"]
    reopened = SkillLibrary(Store(tmp_path), SkillsConfig(mode="read-only"), run_id="theirs")
    assert reopened.skills() == theirs.skills() and reopened.module_source() == theirs.module_source()
