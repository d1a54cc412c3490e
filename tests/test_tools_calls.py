"""Reading tool calls and answers out of action text, in the formats models emit."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfgym.envs.tools.calls import FinalAnswer, ToolCall, answer_text, call_text, parse_tool_action
from selfgym.errors import ActionError

SEARCH = ToolCall("search", {"query": "lamp", "max_price": 30})


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "search", "arguments": {"query": "lamp", "max_price": 30}}',
        '  {"name": "search", "arguments": "{\\"query\\": \\"lamp\\", \\"max_price\\": 30}"}  ',
        '{"name": "search", "parameters": {"query": "lamp", "max_price": 30}}',
        '{"type": "function", "function": {"name": "search", "arguments": {"query": "lamp", "max_price": 30}}}',
        '<tool_call>\n{"name": "search", "arguments": {"query": "lamp", "max_price": 30}}\n</tool_call>',
        '<tool_call>{"name": "search", "arguments": {"query": "lamp", "max_price": 30}}',
        'I will search.\n```json\n{"name": "search", "arguments": {"query": "lamp", "max_price": 30}}\n```',
        'Sure! {"name": "search", "arguments": {"query": "lamp", "max_price": 30}} should do it.',
        'search(query="lamp", max_price=30)',
        '{"tool_calls": [{"function": {"name": "search", "arguments": "{\\"query\\":\\"lamp\\",\\"max_price\\":30}"}}]}',
    ],
)
def test_common_call_formats_give_the_same_call(text):
    assert parse_tool_action(text) == (SEARCH,)


def test_several_calls_in_one_action():
    two = '[{"name": "a", "arguments": {}}, {"name": "b", "arguments": {"x": 1}}]'
    assert parse_tool_action(two) == (ToolCall("a", {}), ToolCall("b", {"x": 1}))
    tagged = '<tool_call>{"name": "a"}</tool_call>\n<tool_call>{"name": "b", "arguments": {"x": 1}}</tool_call>'
    assert parse_tool_action(tagged) == (ToolCall("a", {}), ToolCall("b", {"x": 1}))
    python = '[math.gcd(a=12, b=18), stocks.quote(ticker="AAPL", live=true, extra=None)]'
    assert parse_tool_action(python) == (ToolCall("math.gcd", {"a": 12, "b": 18}),
                                          ToolCall("stocks.quote", {"ticker": "AAPL", "live": True, "extra": None}))
    with pytest.raises(ActionError, match="makes 3 tool calls; at most 2"):
        parse_tool_action("[" + ",".join(['{"name": "a"}'] * 3) + "]", max_calls=2)


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("<answer>42</answer>", "42"),
        ("Done.\n<answer> A1234 </answer>", "A1234"),
        ('{"answer": "blue"}', "blue"),
        ('{"name": "final_answer", "arguments": {"answer": "7"}}', "7"),
        ("Final answer: 3.14", "3.14"),
    ],
)
def test_final_answers(text, answer):
    assert parse_tool_action(text) == FinalAnswer(answer)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the action is empty"),
        ("hello there", "no tool call or answer found"),
        ("{}", 'needs a string "name"'),
        ('{"name": "a", "arguments": [1, 2]}', "must be a JSON object, got list"),
        ('{"name": "a", "arguments": "{oops"}', "string that is not valid JSON"),
        ('<tool_call>{"name": "a"}</tool_call><answer>1</answer>', "both tool calls and an <answer>"),
        ("<tool_call>{not json}</tool_call>", "is not valid JSON"),
        ("search('lamp')", "pass arguments by keyword"),
        ("search(query=open('x'))", "must be a literal"),
        ("[]", "empty list of tool calls"),
        ('[{"name": "a"}, 3]', "item 2 of the list is not a tool call"),
        ("[" * 5000, "nested too deeply"),
    ],
)
def test_malformed_actions_say_what_is_wrong(text, message):
    with pytest.raises(ActionError, match=message) as caught:
        parse_tool_action(text)
    assert "Traceback" not in str(caught.value)


def test_canonical_texts_round_trip():
    assert parse_tool_action(call_text("search", query="lamp", max_price=30)) == (SEARCH,)
    assert parse_tool_action(answer_text("A1")) == FinalAnswer("A1")


_fragments = st.sampled_from(['{', '}', '[', ']', '"name"', '"arguments"', ':', ',', '"search"', '<tool_call>',
                              '</tool_call>', '<answer>', '```json\n', '```', 'f(', ')', '=', '1e999', 'null',
                              '"', '\\', 'answer:', '\n', '(' * 50, '[' * 200, '[' * 3000, '{"a":' * 2000])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_fragments, st.text(max_size=8)), max_size=30).map("".join))
def test_any_text_parses_or_raises_action_error(text):
    try:
        result = parse_tool_action(text)
    except ActionError as exc:
        assert str(exc)
        return
    assert isinstance(result, FinalAnswer) or all(
        isinstance(c, ToolCall) and isinstance(c.arguments, dict) for c in result
    )
    json.dumps([c.arguments for c in result] if isinstance(result, tuple) else result.text)
