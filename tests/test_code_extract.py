"""Finding the program in realistic model replies (the shapes small models actually produce)."""

from __future__ import annotations

import pytest

from selfgym.envs.code.extract import extract_code, parse_tool_call
from selfgym.errors import ActionError

ADD = "def add(a, b):\n    return a + b\n"
STUB = 'def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n'

REPLIES = {
    "fenced": "```python\ndef add(a, b):\n    return a + b\n```",
    "prose around a fence": "Sure! Here is the function:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\n"
                            "It returns the sum of `a` and `b`.",
    "untagged fence": "```\ndef add(a, b):\n    return a + b\n```",
    "py tag, closing fence glued to the code": "```py\ndef add(a, b):\n    return a + b```",
    "unclosed fence (generation cut off)": "Here you go:\n```python\ndef add(a, b):\n    return a + b\n",
    "raw code": "def add(a, b):\n    return a + b",
    "raw code with prose before and after": "The answer is:\n\ndef add(a, b):\n    return a + b\n\n"
                                            "This works because addition is commutative.",
    "wrong block then a corrected one": "```python\ndef add(a, b):\n    return a - b\n```\nOops, that subtracts. "
                                        "Corrected:\n```python\ndef add(a, b):\n    return a + b\n```",
    "solution then a usage block": "```python\ndef add(a, b):\n    return a + b\n```\nUsage:\n```python\n"
                                   "print(add(2, 3))  # 5\n```",
    "chat-template tokens and reasoning": "<think>I just need a + b.</think>\n```python\ndef add(a, b):\n"
                                          "    return a + b\n```<|im_end|>",
    "doctest session": ">>> def add(a, b):\n...     return a + b\n>>> add(1, 2)\n3",
    "indented fence in a list": "1. Define the function:\n   ```python\n   def add(a, b):\n       return a + b\n   ```",
    "tabs and CRLF": "```python\r\ndef add(a, b):\r\n\treturn a + b\r\n```",
}


@pytest.mark.parametrize("reply", list(REPLIES))
def test_the_function_is_found(reply):
    code = extract_code(REPLIES[reply], entry_point="add", stub=STUB)
    namespace: dict = {}
    exec(code, namespace)
    assert namespace["add"](2, 3) == 5
    assert "```" not in code and "<|" not in code and "Sure" not in code


def test_a_helper_from_another_block_is_kept():
    reply = ("First a helper:\n```python\ndef double(x):\n    return 2 * x\n```\nThen:\n```python\n"
             "def add(a, b):\n    return double(a) // 2 + b\n```")
    code = extract_code(reply, entry_point="add")
    namespace: dict = {}
    exec(code, namespace)
    assert namespace["add"](2, 3) == 5 and code.index("def double") < code.index("def add")


def test_demo_code_around_the_function_is_dropped():
    reply = ("```python\nimport math\n\ndef add(a, b):\n    return a + b\n\nLIMIT = 10\n# Example usage:\n"
             "print(add(1, 0) / 0)\nassert add(1, 1) == 3\nfor i in range(3):\n    print(add(i, i))\n```")
    code = extract_code(reply, entry_point="add")
    assert code == "import math\n\ndef add(a, b):\n    return a + b\n\nLIMIT = 10\n"
    program = "n = int(input())\nprint(n * 2)\n"  # a whole program (no entry point) is kept as it is
    assert extract_code(f"```python\n{program}```") == program


def test_a_body_only_continuation_completes_the_stub():
    code = extract_code("    return a + b\n", entry_point="add", stub=STUB)
    assert code.startswith("def add(a: int, b: int) -> int:") and code.rstrip().endswith("return a + b")


def test_an_indented_full_function_is_not_nested_in_the_stub():
    code = extract_code("    def add(a, b):\n        return a + b\n", entry_point="add", stub=STUB)
    assert code == ADD


def test_broken_code_is_still_submitted_so_the_agent_sees_the_syntax_error():
    assert extract_code("```python\ndef add(a, b)\n    return a + b\n```", entry_point="add").startswith("def add(a, b)\n")


def test_a_program_without_entry_point_takes_the_longest_block():
    reply = "Input:\n```\n1 2\n```\nProgram:\n```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    assert extract_code(reply) == "a, b = map(int, input().split())\nprint(a + b)\n"


@pytest.mark.parametrize("reply", ["", "   \n", "hello", "I am not sure how to solve this.", "]]]" * 50,
                                   "\x00\x01 garbage {{{", "The answer is 42."])
def test_replies_without_code_are_action_errors(reply):
    with pytest.raises(ActionError, match="no Python code found"):
        extract_code(reply, entry_point="add")


def test_an_empty_code_block_is_an_action_error():
    with pytest.raises(ActionError, match="empty"):
        extract_code("```python\n```", entry_point="add")


def test_tool_calls_in_the_common_shapes():
    tagged = '<tool_call>\n{"name": "run_python", "arguments": {"code": "print(1)"}}\n</tool_call>'
    assert parse_tool_call(tagged) == ("run_python", {"code": "print(1)"})
    bare = '{"name": "submit", "arguments": {"code": "def add(a, b): return a + b"}}'
    assert parse_tool_call(bare) == ("submit", {"code": "def add(a, b): return a + b"})
    openai = '{"function": {"name": "run_python", "arguments": "{\\"code\\": \\"print(2)\\"}"}}'
    assert parse_tool_call(openai) == ("run_python", {"code": "print(2)"})
    fenced = '```json\n{"name": "submit", "arguments": {"code": "x = 1"}}\n```'
    assert parse_tool_call(fenced) == ("submit", {"code": "x = 1"})


def test_code_is_not_mistaken_for_a_tool_call():
    assert parse_tool_call("```python\ndef add(a, b):\n    return {'name': a}\n```") is None
    assert parse_tool_call(REPLIES["raw code"]) is None


def test_a_broken_tool_call_is_an_action_error():
    with pytest.raises(ActionError, match="not valid JSON"):
        parse_tool_call('<tool_call>{"name": "run_python", "arguments": {"code": }</tool_call>')


def test_a_reply_that_imports_the_entry_point_is_not_completed_with_the_stub():
    from selfgym.envs.code.extract import extract_code

    stub = 'def total(n: int) -> int:\n    """Sum."""\n'
    assert extract_code("```python\nfrom skills import total\n```", entry_point="total", stub=stub).strip() == \
        "from skills import total"
    assert "def total" in extract_code("```python\n    return n\n```", entry_point="total", stub=stub)
