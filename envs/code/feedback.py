"""Short, precise test feedback for the agent after a failed attempt.

Small models profit from one concrete failing case (``add(2, 3) returned 6, expected 5``) more than
from a wall of output, so the default shows the first failure only; ``all_failures`` shows up to
five, ``summary`` shows counts and error types but no test input.
"""

from __future__ import annotations

from typing import Literal

from .verifier import TestOutcome, Verdict

__all__ = ["FeedbackMode", "describe_outcome", "format_feedback"]

FeedbackMode = Literal["first_failure", "all_failures", "summary"]
MAX_LISTED = 5
MAX_PRINTED = 300


def describe_outcome(outcome: TestOutcome, *, reveal: bool = True) -> str:
    """One failing test in a sentence (``reveal=False`` hides its input and values)."""
    label = outcome.label if reveal else "a hidden test"
    if outcome.timed_out:
        return f"{label} did not finish in time (an infinite loop, or too slow?)"
    if outcome.error and outcome.error.startswith("your "):  # the harness on the program, not an exception
        return f"{label} failed: {outcome.error}"
    if outcome.error:
        text = f"{label} raised {outcome.error}" if reveal else f"{label} raised {outcome.error.split(':')[0]}"
        if reveal and outcome.traceback:
            text += "\n    " + outcome.traceback.replace("\n", "\n    ")
        return text
    if not reveal:
        return f"{label} returned a wrong result"
    if outcome.got is not None and outcome.expected is not None:
        if outcome.label.startswith(("assert", "line ")):  # an assertion: show both sides
            return f"{label} failed: got {outcome.got}, expected {outcome.expected}"
        if outcome.label.startswith("input"):
            return f"for {label} your program printed {outcome.got}, expected {outcome.expected}"
        return f"{label} returned {outcome.got}, expected {outcome.expected}"
    return f"{label} failed"


def format_feedback(verdict: Verdict, *, mode: FeedbackMode = "first_failure") -> str:
    """What went wrong, in a few lines."""
    if verdict.passed:
        return "All tests passed." if verdict.n_tests == 1 else f"All {verdict.n_tests} tests passed."
    if verdict.problem is not None:
        text = verdict.problem[0].upper() + verdict.problem[1:]
        return text if "\n" in text else text + "."
    failures = verdict.failures
    lines = [f"{verdict.n_passed}/{verdict.n_tests} tests passed."]
    if not failures:  # fewer outcomes than tests: the verifier rejects such reports; never index into none
        return lines[0]
    if mode == "summary":
        lines += [f"- {describe_outcome(f, reveal=False)}" for f in failures[:MAX_LISTED]]
    elif mode == "all_failures":
        lines += [f"- {describe_outcome(f)}" for f in failures[:MAX_LISTED]]
        if len(failures) > MAX_LISTED:
            lines.append(f"- ... and {len(failures) - MAX_LISTED} more")
    else:
        lines.append("Failed: " + describe_outcome(failures[0]) + ".")
    printed = verdict.stdout.strip()
    if printed and mode != "summary":
        lines.append("Your code printed: " + (printed if len(printed) <= MAX_PRINTED else printed[:MAX_PRINTED] + "..."))
    return "\n".join(lines)
