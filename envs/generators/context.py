"""What a task proposer sees: a context (target family, summarised failures, example tasks).

``render_context`` writes the observation; ``summarise_failure`` turns a failed trajectory into a
few lines; ``ContextSource`` is the procedural source of contexts the ``ProposeTask-v0`` env plays
by default (a failed code task of a target family, plus examples from that family);
``oracle_proposal`` derives a valid, new proposal from a code task with call tests (the env's
oracle and the scripted teacher of the tests).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

import numpy as np

from selfgym.envs.tasks import ProceduralTaskSource
from selfgym.types import Task, Trajectory

from .proposal import PROPOSAL_FORMAT, Proposal, proposal_task, render_proposal

__all__ = ["EXAMPLE_FAILURE", "EXAMPLE_PROPOSAL", "ContextSource", "example_task", "oracle_proposal", "render_context", "summarise_failure"]

MAX_PROMPT_CHARS = 600
MAX_ACTION_CHARS = 400
MAX_FEEDBACK_CHARS = 300


# A complete answer shown in every context (small models copy a format from an example far better
# than from a description). It is protected like an existing task, so a copy of it is a duplicate.
EXAMPLE_PROPOSAL = Proposal(
    instruction="Return the number of vowels (a, e, i, o, u) in the lower-case string s.",
    entry_point="count_vowels",
    tests=('assert count_vowels("apple") == 2', 'assert count_vowels("sky") == 0',
           'assert count_vowels("queue") == 4'),
    reference='def count_vowels(s: str) -> int:\n    return sum(1 for ch in s if ch in "aeiou")\n',
    failing=("def count_vowels(s: str) -> int:\n    return len(s)\n",),
)


EXAMPLE_FAILURE = Task(id="format-example/parent", family="strings", prompt=(
    "Write a Python function `count_char(s: str, c: str) -> int`.\nReturn how many times the character c occurs "
    "in the string s."), difficulty=0.25)


def example_task() -> Task:
    """``EXAMPLE_PROPOSAL`` as a task (protected: proposals may not copy it)."""
    return proposal_task(EXAMPLE_PROPOSAL, family="format-example", source="format-example")


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summarise_failure(task: Task, trajectory: Trajectory | None = None) -> str:
    """A failed attempt in a few lines: the task, the student's last answer and the feedback it got."""
    lines = [f"Task ({task.family}, difficulty {task.difficulty:.2f}):", _clip(task.prompt, MAX_PROMPT_CHARS)]
    if trajectory is not None and trajectory.turns:
        last = trajectory.turns[-1]
        lines += ["Student's last answer:", _clip(last.action, MAX_ACTION_CHARS)]
        feedback = str(trajectory.info.get("final_observation") or "")
        if feedback:
            lines += ["Feedback:", _clip(feedback, MAX_FEEDBACK_CHARS)]
    else:
        lines.append("The student did not solve it.")
    return "\n".join(lines)


def render_context(family: str, failures: Sequence[str], examples: Sequence[Task], *, worked_example: bool = True) -> str:
    """The proposer's observation: what to target, what went wrong, what tasks look like, the format.

    ``worked_example`` appends ``EXAMPLE_PROPOSAL`` as a complete answer (leave it out when the
    prompt shows it as an earlier turn instead).
    """
    parts = [f"You write new practice tasks for a student learning Python ({family} tasks).",
             "Propose ONE new task that practises the skill the student lacks: a little easier or a little "
             "different from the failed task, never a copy of it."]
    for i, failure in enumerate(failures, start=1):
        parts.append(f"## Failed task {i}\n{failure}")
    if examples:
        parts.append("## Example tasks\n" + "\n\n".join(_clip(t.prompt, MAX_PROMPT_CHARS) for t in examples))
    parts.append("## Your answer\n" + PROPOSAL_FORMAT)
    if worked_example:
        parts.append("## A complete answer for another student (write a different task)\n"
                     + render_proposal(EXAMPLE_PROPOSAL).strip())
    return "\n\n".join(parts)


class ContextSource(ProceduralTaskSource):
    """Contexts for ``ProposeTask-v0``: one failed code task (the parent) and example tasks of its family.

    The parent and examples are always *train* tasks of the code families (held-out tasks never
    enter a proposer's prompt); the context's own split only changes which seeds are drawn.
    ``difficulty`` is the difficulty of the parent task.
    """

    family = "propose-code"

    def __init__(self, families: Sequence[str] | None = None, *, n_examples: int = 2) -> None:
        super().__init__(name=self.family)
        self.families = list(families) if families else None
        self.n_examples = n_examples

    def generate(self, rng: np.random.Generator, difficulty: float) -> tuple[str, dict[str, Any]]:
        from selfgym.envs.code.families import FAMILIES

        names = self.families or sorted(FAMILIES)
        source = FAMILIES[names[int(rng.integers(len(names)))]]
        seeds = rng.integers(0, 1_000_000, size=self.n_examples + 1)
        parent = source.make(int(seeds[0]), difficulty)
        examples = [source.make(int(s), float(rng.choice(source.difficulty_levels))) for s in seeds[1:]]
        prompt = render_context(source.family, [summarise_failure(parent)], examples)
        return prompt, {"target_family": source.family, "parent": parent.to_dict(),
                        "examples": [t.to_dict() for t in examples]}


def oracle_proposal(parent: Task) -> Proposal:
    """A valid proposal derived from a code task with call tests: apply its function to a batch of calls.

    The new function ``<name>_batch(calls)`` takes a list of argument tuples and returns the list
    of results; the reference wraps the parent's reference; the failing examples return ``[]`` and
    drop the last result.
    """
    payload = parent.payload
    name, tests = payload.get("entry_point"), payload.get("tests") or []
    if not name or not payload.get("reference") or not tests or not isinstance(tests[0], dict):
        raise ValueError(f"task {parent.id!r} has no reference and call tests to derive a proposal from")
    rule = parent.prompt.splitlines()[1] if len(parent.prompt.splitlines()) > 1 else parent.prompt
    batch = f"{name}_batch"
    pairs = [tests[i:i + 2] for i in range(0, min(len(tests), 8), 2)]
    asserts = []
    for pair in pairs:
        calls = ", ".join(_as_tuple(t["args"]) for t in pair)
        results = ", ".join(t["expected"] for t in pair)
        asserts.append(f"assert {batch}([{calls}]) == [{results}]")
    reference = (payload["reference"].rstrip() + f"\n\n\ndef {batch}(calls):\n"
                 f"    return [{name}(*args) for args in calls]\n")
    failing = (f"def {batch}(calls):\n    return []\n",
               f"{payload['reference'].rstrip()}\n\n\ndef {batch}(calls):\n"
               f"    return [{name}(*args) for args in calls][:-1]\n")
    # the wrapper names the function throughout, so two derived tasks share few n-grams
    instruction = f"{batch} applies {name} to each tuple in calls and returns the {name} results as a list. {name}: {rule}"
    return Proposal(instruction=instruction, entry_point=batch, tests=tuple(asserts), reference=reference,
                    failing=failing)


def _as_tuple(args: str) -> str:
    """``"(1, 2)"`` stays; ``"([1],)"`` stays; anything else becomes a one-element tuple."""
    value = ast.parse(args, mode="eval").body
    return args if isinstance(value, ast.Tuple) else f"({args},)"
