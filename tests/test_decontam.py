"""Decontamination against a protected task set: n-gram containment (and the optional embedding check)."""

from __future__ import annotations

import numpy as np
import pytest

from selfgym.decontam import DecontamConfig, Decontaminator, normalise, overlap
from selfgym.envs.code.families import FAMILIES
from selfgym.envs.generators.context import oracle_proposal
from selfgym.envs.generators.proposal import Proposal
from selfgym.errors import ConfigError
from selfgym.types import Task


def task(task_id: str, prompt: str) -> Task:
    return Task(id=task_id, family="t", prompt=prompt, split="heldout")


def heldout_code_tasks() -> list[Task]:
    return [t for family in FAMILIES.values() for t in family.tasks("heldout", limit=6)]


def test_normalise_drops_case_punctuation_and_numbers():
    assert normalise("Return `max_value(xs)`, e.g. max_value([3, 10]) == 10!") == [
        "return", "max", "value", "xs", "e", "g", "max", "value"]


def test_overlap_is_containment_of_the_candidate():
    protected = "Return the sum of the even numbers in the list xs, or 0 when there are none."
    assert overlap(protected, protected) == 1.0
    assert overlap("Return the sum of the even numbers in the list xs.", protected) == 1.0
    assert overlap("Sort the words of a sentence by their length, longest first.", protected) == 0.0
    assert 0.0 < overlap("Return the sum of the even numbers, then sort the words by length.", protected) < 1.0
    assert overlap("sum of the even", protected) == 1.0  # fewer words than n: a sub-sequence match


def test_near_copies_of_heldout_code_tasks_are_caught_and_derived_tasks_are_not():
    heldout = heldout_code_tasks()
    by_id = {t.id: t for t in heldout}
    index = Decontaminator(heldout)
    for original in heldout:
        ep = original.payload["entry_point"]
        tests = tuple(f"assert {ep}{t['args']} == {t['expected']}" for t in original.payload["tests"][-2:])
        copy = Proposal(instruction=original.prompt.splitlines()[1] + " Mind the edge cases.", entry_point=ep,
                        tests=tests, reference=original.payload["reference"], failing=("",))
        match = index.check(copy.prompt())
        assert match is not None and match.method == "ngram", original.id
        assert by_id[match.task_id].payload["variant"] == original.payload["variant"]
    train = [t for family in FAMILIES.values() for t in family.tasks("train", limit=6)]
    assert [t.id for t in train if index.check(oracle_proposal(t).prompt())] == []


def test_index_agrees_with_the_pairwise_overlap():
    rng = np.random.default_rng(0)
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
    protected = [task(f"p{i}", " ".join(rng.choice(words, size=12))) for i in range(30)]
    index = Decontaminator(protected, DecontamConfig(ngram=3))
    for _ in range(30):
        text = " ".join(rng.choice(words, size=10))
        best = max(overlap(text, t.prompt, 3) for t in protected)
        match = index.closest(text)
        assert (match.overlap if match else 0.0) == pytest.approx(best)


def test_added_tasks_are_protected_and_config_is_checked():
    index = Decontaminator([], DecontamConfig(max_overlap=0.5))
    text = "Return the longest word of the sentence s, the first one on ties."
    assert index.check(text) is None
    index.add([task("new", text)])
    assert len(index) == 1 and index.check(text).task_id == "new"
    with pytest.raises(ConfigError, match="max_overlap must be in"):
        DecontamConfig(max_overlap=1.5)


def test_embedding_similarity_catches_a_paraphrase():
    protected = [task("h1", "Return the number of vowels in the string s."),
                 task("h2", "Compute the greatest common divisor of two positive integers a and b.")]
    paraphrase = "Count how many vowel letters the text s contains and give that count back."
    plain = Decontaminator(protected, DecontamConfig())
    assert plain.check(paraphrase) is None  # few shared n-grams
    embedded = Decontaminator(protected, DecontamConfig(embedding=True, max_similarity=0.6))
    match = embedded.check(paraphrase)
    assert match is not None and match.method == "embedding" and match.task_id == "h1"
    assert embedded.check("Sort a list of tuples by their second element.") is None
