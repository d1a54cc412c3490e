"""BFCL-format data: the loader, the AST scorer (BFCL's rules) and selfgym/ToolsBFCL-v0."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

import selfgym
from selfgym.agents import ScriptedAgent
from selfgym.cli import app
from selfgym.envs.tools.bfcl import bfcl_category, load_bfcl, to_openai_tools
from selfgym.envs.tools.bfcl_ast import ast_check, standardize
from selfgym.errors import ConfigError
from selfgym.run.episode import run_episode

TIP = {"name": "finance.tip", "description": "Tip.", "parameters": {"type": "dict", "properties": {
    "bill": {"type": "float"}, "percent": {"type": "integer"}, "round_up": {"type": "boolean"},
    "city": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
    "diner": {"type": "dict", "properties": {"name": {"type": "string"}, "seat": {"type": "string"}}}},
    "required": ["bill", "percent"]}}
QUOTE = {"name": "stocks.quote", "description": "Quote.", "parameters": {"type": "dict", "properties": {
    "ticker": {"type": "string"}}, "required": ["ticker"]}}
TIP_TRUTH = [{"finance.tip": {"bill": [48.5], "percent": [15], "round_up": ["", False], "city": ["Lisbon, Portugal", "Lisbon"],
                              "tags": [["work", "team"]], "diner": [{"name": ["Maria Silva"], "seat": ["window", ""]}]}}]
GOOD = {"bill": 48.5, "percent": 15, "city": "lisbon portugal", "tags": ["Work", "team"], "diner": {"name": "maria silva"}}


def check(arguments, name="finance.tip"):
    return ast_check([TIP, QUOTE], [(name, arguments)], TIP_TRUTH, "simple_python")


@pytest.mark.parametrize(
    ("change", "valid", "error_type"),
    [
        ({}, True, ""),
        ({"round_up": False}, True, ""),
        ({"bill": "48.5"}, False, "type_error:simple"),
        ({"percent": 15.0}, False, "type_error:simple"),
        ({"percent": 16}, False, "value_error:others"),
        ({"city": "Porto"}, False, "value_error:string"),
        ({"tags": ["team", "work"]}, False, "value_error:list"),
        ({"diner": {"name": "Maria Silva", "seat": "aisle"}}, False, "value_error:dict"),
        ({"extra": 1}, False, "unexpected_param"),
    ],
)
def test_ast_rules(change, valid, error_type):
    result = check({**GOOD, **change})
    assert (result.valid, result.error_type) == (valid, error_type), result.error


def test_ast_rules_for_names_counts_and_missing_parameters():
    assert check({**GOOD, "bill": 48}).valid is False  # 48 is accepted as a float but is not 48.5
    assert check({**GOOD, "bill": 48.50}).valid
    assert check(GOOD, name="finance_tip").valid  # "." written as "_", as function-calling APIs need
    assert check(GOOD, name="stocks.quote").error_type == "wrong_func_name"
    no_city = dict(GOOD)
    del no_city["city"]
    assert check(no_city).error_type == "missing_optional"
    assert check({"bill": 48.5}).error_type == "missing_required"
    assert ast_check([TIP], [], TIP_TRUTH, "simple_python").error_type == "wrong_count"
    assert standardize("April 1, 2024") == standardize("april 1 2024")


def test_parallel_calls_match_in_any_order_and_multiple_picks_one_function():
    truth = [{"stocks.quote": {"ticker": ["AAPL"]}}, {"stocks.quote": {"ticker": ["MSFT"]}}]
    calls = [("stocks.quote", {"ticker": "MSFT"}), ("stocks.quote", {"ticker": "aapl"})]
    assert ast_check([QUOTE], calls, truth, "parallel").valid
    assert not ast_check([QUOTE], calls[:1] * 2, truth, "parallel").valid
    assert ast_check([QUOTE], calls[:1], truth, "parallel").error_type == "wrong_count"
    assert ast_check([TIP, QUOTE], [("stocks.quote", {"ticker": "MSFT"})], truth[1:], "multiple").valid


def test_bundled_sample_is_a_held_out_set_the_oracle_solves():
    source = load_bfcl()
    tasks = list(source.tasks("heldout"))
    assert len(tasks) == 24 and not list(source.tasks("train"))
    assert {t.family for t in tasks} == {"bfcl-simple_python", "bfcl-multiple", "bfcl-parallel",
                                         "bfcl-parallel_multiple", "bfcl-irrelevance"}
    env = selfgym.make("selfgym/ToolsBFCL-v0")
    for task in tasks:
        assert run_episode(env, ScriptedAgent(env), task=task).success, task.id
    env.close()


def test_env_scores_python_syntax_and_irrelevance():
    env = selfgym.make("selfgym/ToolsBFCL-v0")
    env.reset(options={"task": "bfcl/parallel_2"})
    obs, reward, terminated, _, _ = env.step("[math.gcd(a=100, b=75), math.gcd(a=12, b=18)]")
    assert (obs, reward, terminated) == ("correct", 1.0, True)
    _, info = env.reset(options={"task": "bfcl/simple_python_3"})
    assert info["tools"][0]["function"]["name"] == "math_gcd"
    obs, reward, *_ = env.step('{"name": "math_gcd", "arguments": {"a": 84, "b": 35}}')
    assert reward == 0.0 and obs == "incorrect: 'b': 35 is not one of [36]"
    env.reset(options={"task": "bfcl/irrelevance_0"})
    assert env.step("<answer>No function can tell me that.</answer>")[1] == 1.0
    env.reset(options={"task": "bfcl/irrelevance_0"})
    obs, reward, *_ = env.step('{"name": "finance.tip", "arguments": {"bill": 1.0, "percent": 1}}')
    assert reward == 0.0 and "none of the functions fits" in obs
    env.reset(options={"task": "bfcl/irrelevance_0"})
    obs, reward, terminated, truncated, info = env.step("I am not sure.")
    assert reward == 0.0 and truncated and not terminated and info["action_error"]
    env.close()


def test_openai_tools_are_valid_json_schema():
    for task in load_bfcl().tasks("heldout"):
        for spec in to_openai_tools(task.payload["functions"]):
            Draft202012Validator.check_schema(spec["function"]["parameters"])
            assert "." not in spec["function"]["name"]
    book = to_openai_tools([TIP])[0]["function"]["parameters"]
    assert book["type"] == "object" and book["properties"]["bill"]["type"] == "number"
    assert book["properties"]["diner"]["type"] == "object"


def test_loading_files_in_the_bfcl_layout(tmp_path: Path):
    (tmp_path / "possible_answer").mkdir()
    question = {"id": "live_simple_0-0-0", "question": [[{"role": "system", "content": "Be brief."},
                                                         {"role": "user", "content": "Quote IBM."}]],
                "function": [QUOTE]}
    (tmp_path / "BFCL_v4_live_simple.json").write_text(json.dumps(question) + "\n")
    (tmp_path / "possible_answer" / "BFCL_v4_live_simple.json").write_text(
        json.dumps({"id": "live_simple_0-0-0", "ground_truth": [{"stocks.quote": {"ticker": ["IBM"]}}]}) + "\n")
    source = load_bfcl(tmp_path / "BFCL_v4_live_simple.json")
    task = source.get("bfcl/live_simple_0-0-0")
    assert task.family == "bfcl-live_simple" and task.prompt == "Quote IBM." and task.split == "heldout"
    env = selfgym.make("selfgym/ToolsBFCL-v0", task_source=source)
    obs, _ = env.reset(options={"task": task.id})
    assert obs == "Be brief.\n\nQuote IBM."
    assert env.step('stocks.quote(ticker="IBM")')[1] == 1.0
    env.close()
    (tmp_path / "BFCL_v4_simple_java.json").write_text(json.dumps({**question, "id": "simple_java_0"}) + "\n")
    with pytest.raises(ConfigError, match="not supported"):
        load_bfcl(tmp_path / "BFCL_v4_simple_java.json", tmp_path / "possible_answer" / "BFCL_v4_live_simple.json")
    with pytest.raises(ValueError, match="is this an answers file"):
        load_bfcl(tmp_path / "BFCL_v4_live_simple.json", tmp_path / "BFCL_v4_simple_java.json")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="has no ground truth"):
        load_bfcl(tmp_path / "BFCL_v4_live_simple.json", tmp_path / "empty.jsonl")
    assert bfcl_category("parallel_multiple_12") == "parallel_multiple"


@pytest.mark.skipif(importlib.util.find_spec("bfcl_eval") is not None, reason="bfcl-eval is installed here")
def test_package_categories_need_the_bfcl_eval_package():
    with pytest.raises(ConfigError, match="pip install bfcl-eval"):
        load_bfcl(category="simple_python")


def test_cli_eval_on_the_held_out_bfcl_sample(tmp_path: Path):
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(app, ["eval", "selfgym/ToolsBFCL-v0", "--agent", "scripted", "-n", "24",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    assert scores["n_tasks"] == 24 and scores["success_rate"] == 1.0
    assert set(scores["by_family"]) >= {"bfcl-parallel", "bfcl-irrelevance"}
