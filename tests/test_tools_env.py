"""selfgym/Tools-v0: the env contract, the families' oracles and verifiers, errors, isolation, the CLI."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from typer.testing import CliRunner

import selfgym
from selfgym.agents import RandomAgent, ScriptedAgent
from selfgym.cli import app
from selfgym.envs.tasks import HELDOUT_SEED_BASE, load_jsonl_tasks
from selfgym.envs.tools import ToolEnv, ToolEnvConfig, ToolFamily, Verdict, answer_text, call_text, tool
from selfgym.envs.tools.env import default_families
from selfgym.envs.tools.shop import ShopTasks
from selfgym.run.episode import run_episode


@pytest.fixture
def env():
    made = selfgym.make("selfgym/Tools-v0", render_mode="ansi")
    yield made
    made.close()


@pytest.mark.parametrize("env_id", ["selfgym/Tools-v0", "selfgym/ToolsBFCL-v0"])
def test_check_env(env_id):
    made = gymnasium.make(env_id)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_env(made.unwrapped, skip_render_check=True)
    finally:
        made.close()


def _calls(plan: list[str]) -> int:
    return sum(1 for action in plan if not action.startswith("<answer>"))


@pytest.mark.parametrize("family", default_families(), ids=lambda f: f.family)
def test_oracle_solves_every_difficulty_with_1_to_6_dependent_calls(env, family):
    calls_at: dict[float, list[int]] = {0.0: [], 1.0: []}
    for split in ("train", "heldout"):
        for task in family.tasks(split, limit=15):
            traj = run_episode(env, ScriptedAgent(env), task=task)
            assert traj.success and traj.total_reward == 1.0, env.render()
            calls = len(traj.turns) - 1
            assert 1 <= calls <= 6, task.id
            if task.difficulty in calls_at:
                calls_at[task.difficulty].append(calls)
    assert np.mean(calls_at[1.0]) > np.mean(calls_at[0.0]), "difficulty should ask for more calls"


@pytest.mark.parametrize("family", default_families(), ids=lambda f: f.family)
def test_doing_nothing_scores_zero(env, family):
    for task in family.tasks("train", limit=10):
        env.reset(options={"task": task})
        _, reward, terminated, _, info = env.step(answer_text(""))
        assert terminated and reward == 0.0 and not info["success"], task.id


def test_an_agent_that_never_answers_is_truncated(env):
    env.reset(seed=0)
    for _ in range(20):
        _, reward, terminated, truncated, info = env.step('{"name": "no_such_tool", "arguments": {}}')
        assert reward == 0.0 and not terminated and info["action_error"]
    assert truncated


def test_same_seed_same_task_and_held_out_seeds_are_disjoint(env):
    first, second = env.reset(seed=7), env.reset(seed=7)
    assert first[0] == second[0] and first[1]["task"] == second[1]["task"]
    assert first[1]["tools"] == second[1]["tools"] and first[1]["instructions"] == second[1]["instructions"]
    source = env.unwrapped.task_source
    train = {t.id for t in source.tasks("train", limit=50)}
    heldout = list(source.tasks("heldout", limit=50))
    assert train.isdisjoint(t.id for t in heldout)
    assert all(t.split == "heldout" and int(t.id.split("/s")[1].split("/")[0]) >= HELDOUT_SEED_BASE for t in heldout)
    sampled = env.reset(seed=3, options={"split": "heldout"})[1]["task"]
    assert sampled.split == "heldout" and source.get(sampled.id) == sampled


def _shop(env: gymnasium.Env, difficulty: float = 0.0):
    task = ShopTasks().make(11, difficulty)
    env.reset(options={"task": task})
    return task, env.unwrapped.world


def test_errors_are_precise_observations(env):
    task, world = _shop(env)
    obs, _, _, _, info = env.step('{"name": "serch_products", "arguments": {}}')
    assert info["action_error"] and "unknown tool 'serch_products'. Did you mean 'search_products'?" in obs
    obs, *_ , info = env.step(call_text("add_to_cart", product_id="p1", quantity=0))
    assert "at $.quantity: 0 is less than the minimum of 1" in obs and info["action_error"]
    obs, *_ , info = env.step(call_text("search_products", max_price="cheap"))
    assert "at $.max_price: 'cheap' is not valid" in obs
    obs, *_ , info = env.step(call_text("add_to_cart", product_id="p1", quantity=99))
    assert info["action_error"] is None and obs.startswith("add_to_cart failed with: ValueError: only ")
    (call,) = info["tool_calls"]
    assert set(call) == {"name", "error", "duration_s"}
    assert (call["name"], call["error"]) == ("add_to_cart", "ValueError") and call["duration_s"] >= 0.0
    obs, *_ = env.step(call_text("get_product", product_id="p999"))
    assert "get_product failed with: KeyError" in obs and "search_products lists product ids" in obs


def test_an_invalid_call_in_a_batch_runs_none_of_them(env):
    _, world = _shop(env)
    batch = json.dumps([{"name": "add_to_cart", "arguments": {"product_id": "p1"}},
                        {"name": "add_to_cart", "arguments": {"product_id": "p2", "quantity": "two"}}])
    obs, *_ , info = env.step(batch)
    assert "call 2 of 2 (none were run)" in obs and info["action_error"]
    assert world.cart == {}
    obs, *_ = env.step(json.dumps([{"name": "add_to_cart", "arguments": {"product_id": "p1"}},
                                   {"name": "view_cart", "arguments": {}}]))
    assert obs.startswith("[1] add_to_cart returned:") and "\n[2] view_cart returned:" in obs


BLOCK_S = 60.0


def test_tools_time_out_and_the_env_recovers():
    @tool(timeout_s=0.2)
    def spin() -> str:
        """Never returns."""
        while True:
            pass

    @tool(timeout_s=0.2)
    def block() -> str:
        """Blocks in C code far longer than any deadline below (its worker thread is left behind)."""
        time.sleep(BLOCK_S)
        return "late"

    made = ToolEnv(families=[ShopTasks()], tools=[spin, block])
    try:
        made.reset(seed=0)
        for name, how in (("spin", "stopped"), ("block", "abandoned")):
            start = time.perf_counter()
            obs, *_ , info = made.step(call_text(name))
            elapsed = time.perf_counter() - start
            # generous on a loaded machine, yet far below BLOCK_S: the env did not wait for the call
            assert elapsed < BLOCK_S / 2, f"{name}: the step took {elapsed:.1f} s"
            assert obs == f"{name} failed with: timed out: no result after 0.2 s (the call was {how})"
            assert info["tool_calls"][0]["error"] == "ToolTimeout"
            obs, *_ = made.step(call_text("get_balance"))
            assert obs == "get_balance returned: 500.0"
    finally:
        made.close()


_PIECES = ['{', '}', '[', ']', '"name"', '"arguments"', ': ', ', ', '"read_file"', '"write_file"', '"path"',
           '"../../etc/passwd"', '"run_query"', '"sql"', '"DROP TABLE orders"', '"calculate"', '"expression"',
           '"9**9**9"', '"add_to_cart"', '"quantity"', '-1', '1e400', 'null', '<tool_call>', '</tool_call>',
           '<answer>', '</answer>', '```json\n', '```', 'calculate(expression=', ')', '\\u0000', '\n', '"']


def _fuzz_action(rng: np.random.Generator, oracle: str) -> str:
    mode = rng.integers(4)
    if mode == 0:  # mutate a correct action
        chars = list(oracle)
        for _ in range(int(rng.integers(1, 6))):
            pos = int(rng.integers(len(chars) + 1))
            if rng.random() < 0.5 and chars:
                del chars[min(pos, len(chars) - 1)]
            else:
                chars.insert(pos, _PIECES[int(rng.integers(len(_PIECES)))][0])
        return "".join(chars)
    if mode == 1:  # structured garbage
        return "".join(_PIECES[int(i)] for i in rng.integers(len(_PIECES), size=int(rng.integers(1, 25))))
    if mode == 2:  # random printable and non-printable code points
        return "".join(chr(int(c)) for c in rng.integers(1, 0xD7FF, size=int(rng.integers(0, 80))))
    return "".join(rng.choice(list("{}[]\":,abc123 <>/()=\n"), size=int(rng.integers(0, 60))))


def test_1000_fuzzed_actions_never_raise(env):
    rng = np.random.default_rng(0)
    space = env.observation_space
    env.reset(seed=0)
    errors = 0
    for i in range(1000):
        obs, reward, terminated, truncated, info = env.step(_fuzz_action(rng, env.unwrapped.oracle_action()))
        assert isinstance(obs, str) and space.contains(obs)
        assert reward in (0.0, 1.0) and "success" in info and "action_error" in info
        if info["action_error"]:
            errors += 1
            assert obs.startswith("Invalid action: ")
        if terminated or truncated:
            env.reset(seed=i)
    assert errors > 800


def test_side_effects_stay_inside_the_episode(env):
    files = next(f for f in env.unwrapped.families.values() if f.family == "tools-files")
    task = files.make(3, 0.5)
    env.reset(options={"task": task})
    root = env.unwrapped.world.root
    env.step(call_text("write_file", path="notes/mine.txt", content="hello"))
    assert (root / "notes/mine.txt").read_text() == "hello"
    obs, *_ = env.step(call_text("read_file", path="../../../etc/hostname"))
    assert "PermissionError" in obs and "outside the workspace" in obs
    env.reset(options={"task": task})
    assert not root.exists(), "the previous episode's directory is removed"
    new_root = env.unwrapped.world.root
    assert new_root != root and not (new_root / "notes/mine.txt").exists()
    obs, *_ = env.step(call_text("read_file", path="notes/mine.txt"))
    assert "FileNotFoundError" in obs
    other = selfgym.make("selfgym/Tools-v0")
    other.reset(options={"task": task})
    assert other.unwrapped.world.root != new_root
    other.close()
    env.close()
    assert not new_root.exists()


def test_a_bug_in_a_verifier_raises():
    class Buggy(ShopTasks):
        family = "buggy-shop"

        def verify(self, task, world, answer):
            return world.no_such_attribute

    made = ToolEnv(families=[Buggy()])
    made.reset(seed=0)
    with pytest.raises(AttributeError, match="no_such_attribute"):
        made.step(answer_text("A1"))
    made.close()


# The README's example of a custom tool and a custom task family.
@tool
def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: the text to count.
    """
    return len(text.split())


class WordCountTasks(ToolFamily):
    family = "word-count"

    def generate(self, rng: np.random.Generator, difficulty: float) -> tuple[str, dict[str, Any]]:
        words = rng.choice(["red", "green", "blue"], size=int(rng.integers(3, 10 + 40 * difficulty)))
        text = " ".join(words)
        return f"How many words are in this text? {text}", {"text": text, "answer": len(words)}

    def tools(self, world: Any) -> list:
        return [word_count]

    def verify(self, task, world, answer: str) -> Verdict:
        ok = answer.strip() == str(task.payload["answer"])
        return Verdict(ok, "correct" if ok else "wrong count")

    def plan(self, task, world) -> list[str]:
        return [call_text("word_count", text=task.payload["text"]), answer_text(task.payload["answer"])]


def test_custom_tool_and_family_from_the_readme():
    made = gymnasium.wrappers.TimeLimit(ToolEnv(families=[WordCountTasks()]), max_episode_steps=5)
    traj = run_episode(made, ScriptedAgent(made), seed=1)
    assert traj.success and len(traj.turns) == 2
    assert made.unwrapped.tools()[0]["function"]["parameters"]["required"] == ["text"]
    assert not run_episode(made, RandomAgent(made, seed=0), seed=1).success
    made.close()
    selfgym.register_env("WordCount-v0", make_word_count_env, max_episode_steps=5)
    try:
        registered = selfgym.make("selfgym/WordCount-v0")
        assert run_episode(registered, ScriptedAgent(registered), seed=2).success
        registered.close()
    finally:  # leave the global registry as it was for the other tests
        del gymnasium.registry["selfgym/WordCount-v0"]
        selfgym.registry._ENVS.pop("selfgym/WordCount-v0")


def make_word_count_env(**kwargs: Any) -> ToolEnv:
    return ToolEnv(families=[WordCountTasks()], **kwargs)


def test_tasks_from_a_file_are_answer_tasks_with_the_envs_tools(tmp_path: Path):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"id": "wc-1", "prompt": "Count the words in 'a b c d'.", "answer": "4",
                                "oracle": [call_text("word_count", text="a b c d"), answer_text(4)]}) + "\n")
    made = ToolEnv(families=[], tools=[word_count], task_source=load_jsonl_tasks(path, split="heldout"),
                   split="heldout", config=ToolEnvConfig(tool_timeout_s=None))
    traj = run_episode(made, ScriptedAgent(made), task="wc-1")
    assert traj.success and traj.turns[0].action.startswith('{"name": "word_count"')
    made.reset(options={"task": "wc-1"})
    assert made.step(answer_text("five"))[1] == 0.0
    made.close()


def test_cli_run_solves_multi_step_tasks():
    result = CliRunner().invoke(app, ["run", "selfgym/Tools-v0", "--agent", "scripted", "--episodes", "3",
                                      "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert "3/3 solved" in result.output
    turns = [int(line.split(" turns")[0].rsplit(" ", 1)[1]) for line in result.output.splitlines()
             if line.startswith("episode ") and " turns" in line]
    assert len(turns) == 3 and max(turns) >= 4
    assert "returned:" in result.output and "Answer received: correct" in result.output


def test_a_failed_setup_leaves_the_env_usable():
    class Flaky(ShopTasks):
        family = "flaky-shop"
        fail = True

        def open(self, task, ctx):
            ctx.workdir.mkdir(exist_ok=True)  # a family that made files before failing
            if Flaky.fail:
                Flaky.fail = False
                raise RuntimeError("setup went wrong")
            return super().open(task, ctx)

    made = ToolEnv(families=[Flaky()])
    with pytest.raises(RuntimeError, match="setup went wrong"):
        made.reset(seed=0)
    leaked = made._context.workdir
    obs, info = made.reset(seed=0)
    assert not leaked.exists() and info["tools"] and obs.startswith("Buy")
    made.close()
