"""The LLM agent's prompt format, budget trimming and action extraction."""

from __future__ import annotations

import pytest

from selfgym.agents.memory import Note
from selfgym.agents.prompt import (
    TAG_INSTRUCTION,
    build_messages,
    clip_text,
    extract_action,
    fit_to_budget,
    system_message,
)
from selfgym.agents.testing import tiny_tokenizer


def count_with_template(messages: list[dict[str, str]]) -> int:
    tok = tiny_tokenizer()
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return len(tok(text, add_special_tokens=False)["input_ids"])


def test_system_message_orders_sections_and_leaves_out_empty_ones() -> None:
    tools = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]
    memory = {"skill": [Note(id="sk-1", text="def add(a, b):\n    return a + b")],
              "reflection": [Note(id="r-1", text="Check the\nbounds   first.")]}
    text = system_message("You act.", "Reply with an integer.", tools, memory)
    order = [text.index(s) for s in ("You act.", "# Instructions", "# Tools", "# Skills you can reuse",
                                     "# Lessons from earlier attempts")]
    assert order == sorted(order)
    assert '"name": "search"' in text  # the schema, as JSON
    assert "## sk-1\ndef add(a, b):\n    return a + b" in text  # code keeps its lines
    assert "- Check the bounds first." in text  # a lesson is one line
    bare = system_message("You act.")
    assert bare == "You act."
    assert TAG_INSTRUCTION in system_message("You act.", action_format="tag")


def test_build_messages_alternates_and_marks_dropped_turns() -> None:
    history = [("task", "a0"), ("obs1", "a1"), ("obs2", "a2"), ("obs3", "a3")]
    full = build_messages("sys", history, "obs4")
    assert [m["role"] for m in full] == ["system"] + ["user", "assistant"] * 4 + ["user"]
    assert [m["content"] for m in full[1:]] == ["task", "a0", "obs1", "a1", "obs2", "a2", "obs3", "a3", "obs4"]
    trimmed = build_messages("sys", history, "obs4", drop=2)
    assert [m["content"] for m in trimmed[1:]] == ["task", "a0", "[2 earlier turns left out]\nobs3", "a3", "obs4"]
    everything = build_messages("sys", history, "obs4", drop=99)  # never drops the task itself
    assert [m["content"] for m in everything[1:]] == ["task", "a0", "[3 earlier turns left out]\nobs4"]


def test_fit_to_budget_keeps_task_and_latest_observation() -> None:
    history = [(f"observation {i}: " + "lorem ipsum " * 30, f"reply {i}") for i in range(12)]
    history[0] = ("THE TASK: find the number", "reply 0")
    full = build_messages("system prompt", history, "LATEST OBSERVATION")
    budget = count_with_template(full) // 2
    fitted = fit_to_budget("system prompt", history, "LATEST OBSERVATION", count_with_template, budget)
    assert count_with_template(fitted) <= budget
    contents = [m["content"] for m in fitted]
    assert contents[1] == "THE TASK: find the number"
    assert contents[-1].endswith("LATEST OBSERVATION")
    assert "left out" in "".join(contents)
    # the fewest drops that fit: one more turn would not fit
    kept_turns = (len(fitted) - 2) // 2
    dropped = len(history) - kept_turns
    if dropped > 1:
        assert count_with_template(build_messages("system prompt", history, "LATEST OBSERVATION",
                                                  drop=dropped - 1)) > budget
    small = fit_to_budget("s", [("t", "a")], "x", count_with_template, 10_000)
    assert small == build_messages("s", [("t", "a")], "x")


def test_a_dialogue_past_the_budget_keeps_its_prompt_prefix_for_several_turns() -> None:
    """Turn after turn past the budget, the trimmed prompt should extend the previous one (so cached
    keys are reused) on most turns; dropping one exchange a turn changes it right after the task."""
    def extensions(drop_step: int) -> tuple[int, int]:
        history = [("THE TASK", "reply 0")]
        extended = trimmed = 0
        previous: list[dict[str, str]] | None = None
        for turn in range(1, 30):
            fitted = fit_to_budget("system", history, f"observation {turn} " + "lorem " * 20,
                                   count_with_template, 400, drop_step)
            assert count_with_template(fitted) <= 400 and fitted[1]["content"] == "THE TASK"
            if previous is not None and "left out" in "".join(m["content"] for m in previous):
                trimmed += 1
                extended += fitted[:len(previous) - 1] == previous[:-1]  # all but the old last observation
            previous = fitted
            history.append((fitted[-1]["content"].split("]\n")[-1], f"reply {turn}"))
        return extended, trimmed

    extended, trimmed = extensions(drop_step=1)
    assert trimmed >= 12 and extended == 0
    extended, trimmed = extensions(drop_step=4)
    assert trimmed >= 12 and extended >= trimmed * 0.6


def test_fit_to_budget_cuts_a_huge_observation() -> None:
    huge = "start " + "word " * 5000 + " end"
    fitted = fit_to_budget("sys", [], huge, count_with_template, 400)
    assert count_with_template(fitted) <= 400
    assert fitted[-1]["content"].startswith("start") and fitted[-1]["content"].endswith("end")
    assert "characters cut" in fitted[-1]["content"]


def test_clip_text() -> None:
    assert clip_text("short", 10) == "short"
    clipped = clip_text("a" * 50 + "b" * 50, 20)
    assert clipped.startswith("a" * 10) and clipped.endswith("b" * 10) and "80 characters cut" in clipped


@pytest.mark.parametrize(("text", "fmt", "action", "error"), [
    ("My guess is 42", "text", "My guess is 42", None),
    ("I think... <action>42</action>", "tag", "42", None),
    ("<action>1</action> no wait <action>\n  7 \n</action>", "tag", "7", None),
    ("<action>print(1)\nprint(2)</action>", "tag", "print(1)\nprint(2)", None),
    ("just 42", "tag", "just 42", "no <action>...</action> in the reply"),
])
def test_extract_action(text: str, fmt: str, action: str, error: str | None) -> None:
    assert extract_action(text, fmt) == (action, error)  # type: ignore[arg-type]
