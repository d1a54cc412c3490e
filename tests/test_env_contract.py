"""The LLMEnv contract, checked on every registered environment (new envs are covered automatically)."""

import warnings

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import selfgym
from selfgym.agents import RandomAgent, ScriptedAgent
from selfgym.run.episode import run_episode

ENV_IDS = [info.id for info in selfgym.list_envs()]


@pytest.fixture
def make_env():
    made = []

    def make(env_id, **kwargs):
        env = gymnasium.make(env_id, **kwargs)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


def test_registry_is_not_empty():
    assert "selfgym/Guess-v0" in ENV_IDS


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id, make_env):
    env = make_env(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gymnasium's checker reports problems as warnings
        check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_task_and_first_observation(env_id, make_env):
    first = make_env(env_id).reset(seed=123)
    second = make_env(env_id).reset(seed=123)
    assert first[0] == second[0]
    assert first[1]["task"] == second[1]["task"]
    for key in ("task", "instructions", "tools"):
        assert key in first[1]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_malformed_actions_become_observations(env_id, make_env):
    env = make_env(env_id)
    env.reset(seed=0)
    for action in ["", "\x00\x01 garbage {{{", "]]]" * 50]:
        obs, reward, terminated, truncated, info = env.step(action)
        assert isinstance(obs, str) and env.observation_space.contains(obs)
        assert "success" in info and "action_error" in info
        if terminated or truncated:
            env.reset(seed=1)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_oracle_solves_and_random_agent_does_not(env_id, make_env):
    env = make_env(env_id)
    solved = run_episode(env, ScriptedAgent(env), seed=5)  # every family ships an oracle: none is a failure
    assert solved.success and solved.total_reward > 0
    failed = run_episode(env, RandomAgent(env, seed=0), seed=5)
    assert not failed.success


def test_turn_budget_truncates(make_env):
    env = make_env("selfgym/Guess-v0", difficulty=1.0)
    env.reset(seed=0)
    steps, truncated = 0, False
    while not truncated:
        _, _, terminated, truncated, info = env.step("no number here")
        steps += 1
        assert not terminated and info["action_error"]
    assert steps == 12 and not info["success"]


def test_options_task_picks_the_task_and_render_shows_the_dialogue(make_env):
    env = make_env("selfgym/Guess-v0", render_mode="ansi")
    task = env.unwrapped.task_source.make(42, 0.0)
    obs, info = env.reset(options={"task": task.id})
    assert info["task"] == task and obs == task.prompt
    env.step(str(task.payload["secret"]))
    text = env.render()
    assert "[TASK] I am thinking" in text and f"[AGENT] {task.payload['secret']}" in text and "[ENV] correct" in text
    with pytest.raises(KeyError, match="not in task source"):
        env.reset(options={"task": "guess/nope"})
