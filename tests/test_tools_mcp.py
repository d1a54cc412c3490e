"""Tools mounted from a real MCP server over stdio (the bundled inventory server, in a subprocess)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import warnings
from pathlib import Path

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import selfgym
from selfgym.agents import RandomAgent, ScriptedAgent
from selfgym.envs.tasks import load_jsonl_tasks
from selfgym.envs.tools import MCPServerConfig, ToolEnv, answer_text, call_text
from selfgym.envs.tools.inventory import DEMO_SERVER_SCRIPT, InventoryTasks
from selfgym.envs.tools.mcp_tools import MCPConnection, ToolServerError
from selfgym.run.episode import run_episode


@pytest.fixture(scope="module")
def env():
    made = selfgym.make("selfgym/ToolsMCP-v0", render_mode="ansi")
    yield made
    made.close()


def test_check_env():
    made = gymnasium.make("selfgym/ToolsMCP-v0")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_env(made.unwrapped, skip_render_check=True)
    finally:
        made.close()


def test_tools_and_schemas_come_from_the_server(env):
    _, info = env.reset(seed=0)
    names = [t["function"]["name"] for t in info["tools"]]
    assert names == ["list_items", "get_item", "restock"]  # admin_* tools are not mounted
    restock = info["tools"][2]["function"]
    assert restock["parameters"]["title"] == "restockArguments"  # the server's own (pydantic) schema
    assert restock["parameters"]["required"] == ["sku", "quantity"]
    assert "restock(sku: string, quantity: integer)" in info["instructions"]


def test_the_oracle_solves_tasks_through_the_server_and_random_text_does_not(env):
    family = InventoryTasks()
    for task in [*family.tasks("train", limit=5), *family.tasks("heldout", limit=5)]:
        traj = run_episode(env, ScriptedAgent(env), task=task)
        assert traj.success, env.render()
        state = env.unwrapped.world.call("admin_state")
        assert all(state[sku]["stock"] == task.payload["items"][sku]["target_level"] for sku in task.payload["low"])
    assert not run_episode(env, RandomAgent(env, seed=1), seed=3).success


def test_server_errors_and_schema_violations_are_observations(env):
    env.reset(seed=1)
    obs, *_, info = env.step(call_text("get_item", sku="SKU-0"))
    assert info["action_error"] is None and obs.startswith("get_item failed with: MCPToolError: ")
    assert "no item with sku 'SKU-0'" in obs
    obs, *_, info = env.step(call_text("restock", sku="SKU-0", quantity="many"))
    assert "at $.quantity: 'many' is not of type 'integer'" in obs and info["action_error"]
    obs, *_, info = env.step(call_text("admin_state"))
    assert "unknown tool 'admin_state'" in obs
    sku = env.unwrapped.task.payload["low"][0]
    obs, *_ = env.step(call_text("restock", sku=sku, quantity=5000))
    assert "quantity must be between 1 and 1000" in obs


class _CrashingAgent(ScriptedAgent):
    """Plays the oracle, but kills the MCP server after its second action."""

    def act(self, observation, info):
        if len(self.env.transcript) == 5:  # task, 2 x (action, result)
            os.kill(self.env.world.call("admin_pid"), signal.SIGKILL)
            time.sleep(0.2)
        return super().act(observation, info)


def test_a_crashed_server_aborts_the_episode_and_is_restarted(env):
    traj = run_episode(env, _CrashingAgent(env), seed=2)
    assert traj.aborted is not None and traj.aborted.startswith("ToolServerError: MCP server 'inventory' closed")
    assert len(traj.turns) == 2 and not traj.success
    traj = run_episode(env, ScriptedAgent(env), seed=4)  # reset found the server dead and restarted it
    assert traj.success and traj.aborted is None
    os.kill(env.unwrapped.world.call("admin_pid"), signal.SIGKILL)  # dies between episodes
    time.sleep(0.2)
    assert run_episode(env, ScriptedAgent(env), seed=5).success


def test_a_server_that_cannot_start_is_an_infrastructure_error():
    # (command, args, startup timeout, expected message). A server that exits or cannot be run is
    # reported as soon as that happens, well before its (long) timeout; one that never answers is
    # given up on at its (short) timeout, not waited for.
    cases = ((sys.executable, ("-c", "import sys; print('boom', file=sys.stderr)"), 60, "Connection closed.*boom"),
             ("/nonexistent/server", (), 60, "did not start.*No such file"),
             (sys.executable, ("-c", "import time; time.sleep(600)"), 2, "no answer to initialize in time"))
    for command, args, timeout_s, message in cases:
        connection = MCPConnection(MCPServerConfig(name="bad", command=command, args=args,
                                                   startup_timeout_s=timeout_s))
        start = time.perf_counter()
        with pytest.raises(ToolServerError, match=message):
            connection.start()
        connection.close()
        elapsed = time.perf_counter() - start
        assert elapsed < 30, f"{command} {args}: start-up failure took {elapsed:.1f} s"


def test_any_mcp_server_mounts_into_a_tool_env_for_tasks_from_a_file(tmp_path: Path):
    stock = {"SKU-1": {"name": "bolts", "stock": 17}, "SKU-2": {"name": "nuts", "stock": 4}}
    config = MCPServerConfig(name="warehouse", command=sys.executable, args=(str(DEMO_SERVER_SCRIPT),),
                             env={"SELFGYM_INVENTORY_JSON": json.dumps(stock)}, include=("list_items",),
                             prefix="wh_")
    path = tmp_path / "questions.jsonl"
    path.write_text(json.dumps({"id": "q1", "prompt": "How many bolts are in stock?", "answer": "17",
                                "oracle": [call_text("wh_list_items"), answer_text("17")]}) + "\n")
    made = ToolEnv(families=[], mcp_servers=[config], task_source=load_jsonl_tasks(path, split="heldout"),
                   split="heldout")
    try:
        _, info = made.reset(options={"task": "q1"})
        assert [t["function"]["name"] for t in info["tools"]] == ["wh_list_items"]
        obs, *_ = made.step(call_text("wh_list_items"))
        assert '"name": "bolts", "stock": 17' in obs
        assert made.step(answer_text("17"))[1] == 1.0
        made.reset(options={"task": "q1"})
        assert made.step(answer_text("4"))[1] == 0.0
    finally:
        made.close()
