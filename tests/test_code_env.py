"""``selfgym/Code-v0``: episodes, multi-turn self-debugging, rewards, tools, the CLI."""

from __future__ import annotations

import warnings

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env
from typer.testing import CliRunner

import selfgym
from selfgym.agents import ScriptedAgent
from selfgym.cli import app
from selfgym.envs.code.env import CodeEnv
from selfgym.envs.code.families import FAMILIES
from selfgym.envs.code.sandbox import SandboxConfig, make_sandbox
from selfgym.errors import SandboxError
from selfgym.run.episode import run_episode


@pytest.fixture
def env():
    environment = gymnasium.make("selfgym/Code-v0")
    yield environment
    environment.close()


def _task(family: str, variant: str, difficulty: float = 0.0):
    for seed in range(500):
        task = FAMILIES[family].make(seed, difficulty)
        if task.payload["variant"] == variant:
            return task
    raise AssertionError(f"no seed gives {variant}")


ADD = _task("arithmetic", "add")


def test_gymnasium_check_env_passes_with_defaults(env):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=True)


def test_oracle_solves_every_family_at_every_difficulty_and_do_nothing_scores_zero(env):
    for family in FAMILIES.values():
        for difficulty in (0.0, 0.5, 1.0):
            task = family.make(11, difficulty)
            solved = run_episode(env, ScriptedAgent(env), task=task)
            assert solved.success and solved.total_reward == 1.0 and len(solved.turns) == 1, task.id
    obs, info = env.reset(options={"task": ADD})
    rewards = []
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step("```python\ndef add(a, b):\n    pass\n```")
        rewards.append(reward)
    assert terminated and not info["success"] and rewards == [0.0, 0.0, 0.0] and "No attempts left" in obs


def test_feedback_after_a_failed_attempt_then_success_on_the_fix(env):
    obs, info = env.reset(options={"task": ADD})
    assert "add(a: int, b: int) -> int" in obs and "```python" in info["instructions"]
    first_call = ADD.payload["examples"][0]
    obs, reward, terminated, _, info = env.step("```python\ndef add(a, b):\n    return a - b\n```")
    assert reward == 0.0 and not terminated and info["attempt"] == 1
    assert obs.startswith("Attempt 1 of 3 failed.") and f"Failed: {first_call} returned" in obs and "expected" in obs
    assert "2 attempts left" in obs
    obs, reward, terminated, _, info = env.step("def add(a, b):\n    return a + b")
    assert reward == 1.0 and terminated and info["success"] and obs.startswith("All ")


def test_errors_show_the_exception_and_the_failing_line(env):
    env.reset(options={"task": ADD})
    obs, *_ = env.step("```python\ndef add(a, b):\n    total = a + b\n    return total / 0\n```")
    assert "raised ZeroDivisionError: division by zero" in obs and "line 3, in add: return total / 0" in obs
    obs, *_ = env.step("```python\ndef add(a, b)\n    return a + b\n```")
    assert "SyntaxError" in obs and "(line 1)" in obs


def test_a_reply_without_code_is_an_error_observation_and_uses_no_attempt(env):
    env.reset(options={"task": ADD})
    obs, reward, terminated, truncated, info = env.step("I think the answer is to add them.")
    assert obs.startswith("Invalid action: no Python code found") and info["action_error"] and reward == 0.0
    assert not terminated and not truncated and env.unwrapped.attempts == 0


def test_the_turn_budget_truncates_an_agent_that_never_writes_code(env):
    env.reset(options={"task": ADD})
    for _ in range(6):
        _, _, terminated, truncated, _ = env.step("no code, sorry")
        assert not terminated
    assert truncated


def test_partial_credit_rewards_the_fraction_passed_on_the_last_attempt():
    env = CodeEnv(max_attempts=1, partial_credit=True)
    task = _task("lists", "count_evens", 0.5)
    env.reset(options={"task": task})
    _, reward, terminated, _, info = env.step("def count_evens(xs):\n    return 0 if not xs else 1")
    assert terminated and not info["success"] and 0 < reward < 1
    assert reward == pytest.approx(info["tests_passed"] / info["tests_total"])
    env.close()


def test_summary_feedback_hides_the_test_inputs_and_show_tests_reveals_them():
    hidden = CodeEnv(feedback="summary")
    hidden.reset(options={"task": ADD})
    obs, *_ = hidden.step("def add(a, b):\n    return a - b")
    assert "a hidden test returned a wrong result" in obs and ADD.payload["examples"][0] not in obs
    shown = CodeEnv(show_tests=True)
    obs, _ = shown.reset(options={"task": ADD})
    assert "Hidden tests:" in obs and obs.count(" == ") >= len(ADD.payload["tests"])


def test_run_tool_executes_code_without_using_an_attempt():
    env = CodeEnv(allow_run=True)
    _, info = env.reset(options={"task": ADD})
    assert {tool["function"]["name"] for tool in info["tools"]} == {"run_python", "submit"}
    env.step("def add(a, b):\n    return a - b")
    call = '<tool_call>{"name": "run_python", "arguments": {"code": "from solution import add\\nprint(add(2, 3))"}}</tool_call>'
    obs, reward, terminated, _, info = env.step(call)
    assert obs.startswith("[run_python: exit code 0]") and "-1" in obs and reward == 0 and not terminated
    assert env.attempts == 1
    obs, reward, *_ = env.step('{"name": "submit", "arguments": {"code": "def add(a, b):\\n    return a + b"}}')
    assert reward == 1.0


def test_run_tool_is_refused_when_not_enabled(env):
    env.reset(options={"task": ADD})
    obs, _, _, _, info = env.step('{"name": "run_python", "arguments": {"code": "print(1)"}}')
    assert info["action_error"] and "unknown tool 'run_python'" in obs


def test_humaneval_through_the_env_by_task_source_name():
    env = gymnasium.make("selfgym/Code-v0", task_source="humaneval")
    traj = run_episode(env, ScriptedAgent(env), task="HumanEval/0")
    assert traj.success
    obs, _ = env.reset(options={"task": "HumanEval/1"})
    assert "def separate_paren_groups" in obs
    obs, *_ = env.step("    return []\n")  # a completion-style body, appended to the stub
    assert "Attempt 1 of 3 failed" in obs and "expected" in obs
    env.close()


def test_a_broken_sandbox_aborts_the_episode_instead_of_scoring_it():
    sandbox = make_sandbox(SandboxConfig(backend="bwrap", pool_size=1))
    sandbox.close()
    env = CodeEnv(sandbox=sandbox)
    traj = run_episode(env, ScriptedAgent(env), task=ADD)
    assert traj.aborted and "SandboxError" in traj.aborted and not traj.success
    with pytest.raises(SandboxError):
        env.reset(options={"task": ADD})
        env.step(env.oracle_action())


def test_envs_share_one_warm_pool():
    first, second = CodeEnv(), CodeEnv()
    assert first.sandbox is second.sandbox


def test_same_seed_same_task_and_difficulty_is_respected():
    env = gymnasium.make("selfgym/Code-v0", difficulty=1.0)
    first = env.reset(seed=9)
    second = env.reset(seed=9)
    assert first[0] == second[0] and first[1]["task"].difficulty == 1.0
    env.close()


def test_cli_run_solves_a_procedural_task_and_prints_the_dialogue():
    result = CliRunner().invoke(app, ["run", "selfgym/Code-v0", "--agent", "scripted", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "[TASK] Write a Python function" in result.output and "[AGENT] ```python" in result.output
    assert "[ENV] All " in result.output and "1/1 solved" in result.output
    assert "selfgym/Code-v0" in {info.id for info in selfgym.list_envs()}
