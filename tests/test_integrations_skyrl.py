"""SkyRL-gym interop: a selfgym env through skyrl_gym.make, a SkyRL-gym env through selfgym."""

from __future__ import annotations

import json

import pytest

skyrl_gym = pytest.importorskip("skyrl_gym")

import gymnasium  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import selfgym  # noqa: E402
from selfgym.cli import app  # noqa: E402
from selfgym.integrations.skyrl import SelfgymTextEnv, register_skyrl, register_skyrl_env  # noqa: E402
from selfgym.types import Task  # noqa: E402

GSM8K = [
    Task(id=f"gsm8k-{i}", family="gsm8k", split=split, prompt=f"What is {a} + {b}? End with #### <answer>.",
         payload={"extras": {"reward_spec": {"ground_truth": str(a + b)}}}, source="skyrl:gsm8k")
    for i, (a, b, split) in enumerate([(2, 3, "train"), (10, 7, "train"), (4, 4, "heldout"), (6, 9, "heldout")])
]


def test_skyrl_make_plays_a_selfgym_env_scripted_to_success():
    env_id = register_skyrl("Guess-v0")
    env = skyrl_gym.make(env_id, extras={"seed": 3})
    assert isinstance(env, SelfgymTextEnv)
    prompt, meta = env.init([])
    assert prompt[-1]["role"] == "user" and meta["task_id"]
    oracle = env.env.unwrapped
    rewards = []
    for _ in range(env.max_turns):
        out = env.step(oracle.oracle_action())
        rewards.append(out["reward"])
        if out["done"]:
            break
        assert out["observations"][0]["role"] == "user"
    assert out["done"] and out["metadata"]["success"] is True and sum(rewards) > 0
    assert env.get_metrics()["success"] == 1.0
    env.close()


def test_skyrl_make_reports_a_malformed_action_as_an_observation():
    env = skyrl_gym.make(register_skyrl("selfgym/Guess-v0"), extras={"seed": 0})
    env.init([])
    out = env.step("not a number")
    assert out["metadata"]["action_error"] and out["reward"] == 0.0


@pytest.fixture(scope="module")
def gsm8k_env_id() -> str:
    full = "selfgym/SkyRLGsm8kTest-v0"
    if full not in gymnasium.registry:
        register_skyrl_env("SkyRLGsm8kTest-v0", "gsm8k", GSM8K, max_episode_steps=1)
    return full


def test_inbound_skyrl_env_passes_the_env_contract(gsm8k_env_id):
    env = selfgym.make(gsm8k_env_id)
    check_env(env.unwrapped, skip_render_check=True)
    observation, info = env.reset(options={"task": "gsm8k-0"})
    assert "2 + 3" in observation and info["task"].id == "gsm8k-0"
    _, reward, terminated, _, info = env.step("2 + 3 is 5.\n#### 5")
    assert reward == 1.0 and terminated and info["success"]
    env.reset(options={"task": "gsm8k-1"})
    _, reward, terminated, _, info = env.step("#### 3")
    assert reward == 0.0 and terminated and not info["success"]
    env.close()


def test_selfgym_eval_runs_on_an_inbound_skyrl_env(gsm8k_env_id, tmp_path):
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(app, ["eval", gsm8k_env_id, "--agent", "random", "-n", "2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    assert scores["n_tasks"] == 2 and scores["success_rate"] == 0.0


def test_readme_skyrl_example_runs():
    import re
    import subprocess
    import sys
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    match = re.search(r"<!-- example: skyrl .*?-->\n```python\n(.*?)```", text, re.S)
    assert match, "README lost its SkyRL-gym example"
    out = subprocess.run([sys.executable, "-c", match.group(1)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines() == ["1.0 True True", "1.0"]
