"""The Code-as-Task proposal format: fixed completion strings -> parsed proposals, and the error messages."""

from __future__ import annotations

import json

import pytest

from selfgym.envs.generators.proposal import (
    Proposal,
    ProposalError,
    parse_proposal,
    proposal_task,
    render_proposal,
)

VOWELS = '''Here is my task.

### Instruction
Return the number of vowels (a, e, i, o, u) in the lower-case string s.
### Entry point
count_vowels
### Tests
```python
assert count_vowels("apple") == 2
assert count_vowels("") == 0
assert count_vowels(
    "queue"
) == 4
```
### Reference
```python
def count_vowels(s: str) -> int:
    return sum(ch in "aeiou" for ch in s)
```
### Failing examples
```python
def count_vowels(s: str) -> int:
    return len(s)
```
```python
def count_vowels(s):
    return 0
```
'''


def test_markdown_proposal_parses_into_its_parts():
    proposal = parse_proposal(VOWELS)
    assert proposal.instruction == "Return the number of vowels (a, e, i, o, u) in the lower-case string s."
    assert proposal.entry_point == "count_vowels"
    assert proposal.tests == ('assert count_vowels("apple") == 2', 'assert count_vowels("") == 0',
                              'assert count_vowels(\n    "queue"\n) == 4')
    assert proposal.reference.startswith("def count_vowels(s: str) -> int:\n")
    assert len(proposal.failing) == 2 and "return len(s)" in proposal.failing[0]
    assert proposal.signature == "count_vowels(s: str) -> int"


def test_json_proposal_in_a_fence_parses_the_same():
    md = parse_proposal(VOWELS)
    data = {"instruction": md.instruction, "entry_point": md.entry_point, "tests": list(md.tests),
            "reference": md.reference, "failing_examples": list(md.failing)}
    assert parse_proposal("```json\n" + json.dumps(data) + "\n```") == md


def test_render_then_parse_is_the_identity():
    proposal = parse_proposal(VOWELS)
    assert parse_proposal(render_proposal(proposal)) == proposal


def test_entry_point_is_inferred_from_the_function_the_tests_call():
    text = VOWELS.replace("### Entry point\ncount_vowels\n", "")
    assert parse_proposal(text).entry_point == "count_vowels"


def test_task_prompt_and_payload_use_the_code_env_assert_format():
    task = proposal_task(parse_proposal(VOWELS), parent_id="strings/s1/d0.0", metadata={"teacher_id": "t"})
    assert task.split == "generated" and task.family == "generated" and task.parent_id == "strings/s1/d0.0"
    assert task.prompt.startswith("Write a Python function `count_vowels(s: str) -> int`.")
    assert 'assert count_vowels("apple") == 2' in task.prompt  # one example shown
    assert task.payload["tests"][1] == 'assert count_vowels("") == 0'
    assert task.payload["entry_point"] == "count_vowels" and task.payload["generator"] == {"teacher_id": "t"}
    # same instruction and tests: same id (a resubmission is the same task)
    assert proposal_task(parse_proposal(VOWELS)).id == task.id


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: "I cannot think of a task.", "no sections found"),
    (lambda t: t.split("### Reference")[0], "`Reference` section is missing"),
    (lambda t: t.replace("Return the number of vowels (a, e, i, o, u) in the lower-case string s.", "Vowels."),
     "instruction is too short"),
    (lambda t: t.replace('assert count_vowels("") == 0', 'print(count_vowels(""))'), "must be `assert` statements"),
    (lambda t: t.replace("    return sum(ch", "return sum(ch"), "reference is not valid Python"),
    (lambda t: t.replace("### Entry point\ncount_vowels", "### Entry point\nvowels"), "does not define `vowels`"),
    (lambda t: t.split("### Failing examples")[0] + "### Failing examples\nnone\n", "give 1 to 5 failing examples"),
    (lambda t: t.replace("    return len(s)", '    return sum(ch in "aeiou" for ch in s)'),
     "failing example 1 is the reference itself"),
    (lambda t: t.replace("### Tests", "### Tests\n```python\nassert 1 == 1\n```\n### Tests"), "appears twice"),
    (lambda t: "{\"instruction\": \"x\",}", "looks like JSON but does not parse"),
    (lambda t: '{"instruction": "a b c d", "solution": "x"}', "unknown key 'solution'"),
])
def test_malformed_proposals_name_what_is_wrong(edit, message):
    with pytest.raises(ProposalError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_proposal(edit(VOWELS))


def test_too_few_tests_is_an_error():
    one_test = VOWELS.replace('assert count_vowels("") == 0\n', "").replace(
        'assert count_vowels(\n    "queue"\n) == 4\n', "")
    with pytest.raises(ProposalError, match=r"give 2 to 20 assert tests \(got 1\)"):
        parse_proposal(one_test)


def test_proposal_is_a_frozen_record():
    proposal = parse_proposal(VOWELS)
    assert isinstance(proposal, Proposal)
    with pytest.raises(AttributeError):
        proposal.instruction = "changed"  # type: ignore[misc]
