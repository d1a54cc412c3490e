"""The extraction prompt and the parser of its answers, tested like code."""

import pytest

from selfgym.skills import CandidateError, extraction_prompt, parse_candidate
from selfgym.types import Task

ONE_BLOCK = '''```python
def clamp(x, lo, hi):
    """Limit x to the range [lo, hi]."""
    return max(lo, min(hi, x))

assert clamp(5, 0, 3) == 3
assert clamp(-1, 0, 3) == 0
```'''


def test_two_blocks_and_one_block_answers_parse():
    two = parse_candidate('Sure:\n```python\nimport math\n\ndef hyp(a, b=1):\n    """Length of the hypotenuse."""\n'
                          '    return math.hypot(a, b)\n```\nTests:\n```python\nassert hyp(3, 4) == 5\n```')
    assert (two.name, two.description, two.signature) == ("hyp", "Length of the hypotenuse.", "hyp(a, b=1)")
    assert two.tests == "assert hyp(3, 4) == 5"
    one = parse_candidate(ONE_BLOCK)
    assert one.name == "clamp" and one.tests.count("assert") == 2 and "assert" not in one.code


@pytest.mark.parametrize("answer, reason", [
    ("I cannot do that.", "no ```python code block"),
    ("```python\ndef f(:\n```", "syntax error"),
    ("```python\ndef a():\n    '''A.'''\n\ndef b():\n    '''B.'''\n```\n```python\nassert a() is None\n```",
     "exactly one top-level function"),
    ("```python\ndef total(x):\n    return x\n```\n```python\nassert total(1) == 1\n```", "no docstring"),
    ("```python\ndef total(x):\n    '''T.'''\n    return x\n```\n```python\nprint(total(1))\n```", "no assert tests"),
    ("```python\ndef total(x):\n    '''T.'''\n    return x\n```\n```python\nassert 1 == 1\n```", "never call total"),
    ("```python\ndef sum(x):\n    '''S.'''\n    return x\n```\n```python\nassert sum(1) == 1\n```", "shadows a builtin"),
    ("```python\nx = 1\ndef total(x):\n    '''T.'''\n    return x\n```\n```python\nassert total(1) == 1\n```",
     "only imports and one function"),
])
def test_bad_answers_are_rejected_with_the_reason(answer, reason):
    with pytest.raises(CandidateError, match=reason.replace("(", r"\(")):
        parse_candidate(answer)


def test_the_prompt_shows_the_task_the_solution_the_format_and_taken_names():
    task = Task(id="t/1", family="t", prompt="Write `f(n)` returning n squared.")
    messages = extraction_prompt(task, "def f(n):\n    return n * n\n", existing=["clamp", "hyp"])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    user = messages[-1]["content"]
    assert "Write `f(n)` returning n squared." in user and "return n * n" in user
    assert "clamp, hyp" in user and "second ```python block" in user
    assert "two ```python code blocks" in messages[0]["content"]
    # the worked example shown as the model's earlier answer is itself a valid answer
    assert parse_candidate(messages[2]["content"]).name == "count_chars_in"


def test_tests_are_gathered_from_every_block_and_the_function_from_the_first_def():
    answer = ("```python\ndef inc(x):\n    \"\"\"Add one.\"\"\"\n    return x + 1\n```\nMore:\n"
              "```python\ndef inc(x):\n    return x + 2\n```\n```python\nassert inc(1) == 2\n```")
    candidate = parse_candidate(answer)
    assert "x + 1" in candidate.code and candidate.tests == "assert inc(1) == 2"


def test_a_missing_docstring_takes_the_fallback_description():
    answer = "```python\ndef total(x):\n    return x\n```\n```python\nassert total(1) == 1\n```"
    assert parse_candidate(answer, fallback_description="Write `f`: the total.").description == "Write `f`: the total."
