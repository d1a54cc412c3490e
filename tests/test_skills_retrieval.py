"""Retrieval: BM25 by default (words in common), dense MiniLM embeddings for paraphrases."""

import pytest

from selfgym.skills import Skill, SkillLibrary, SkillsConfig
from selfgym.store import Store
from selfgym.types import Task

SKILLS = [("digit_sum", "Sum of the decimal digits of an integer (sign ignored)."),
          ("reverse_words", "Reverse the order of the words in a sentence."),
          ("is_prime", "Whether an integer is a prime number."),
          ("count_vowels_in", "Count the vowels of a string.")]
PARAPHRASE = Task(id="q/1", family="q", prompt="Write `f(x)`: add together each figure of x written in base ten.")
FLIP = Task(id="q/2", family="q", prompt="Write `g(s)` that flips a phrase so the last token comes first.")
UNRELATED = Task(id="q/3", family="q", prompt="Write `h(url)` returning the host name of a web address.")


def _library(tmp_path, **config):
    store = Store(tmp_path)
    store.create_run("r", {})
    writer = SkillLibrary(store, SkillsConfig(mode="read-write"), run_id="r")
    for name, description in SKILLS:
        writer.add(Skill(name=name, description=description, code=f"def {name}(x):\n    return x\n",
                         signature=f"{name}(x)", tests=f"assert {name}(1) == 1"))
    return SkillLibrary(store, SkillsConfig(mode="read-only", **config), run_id="r")


def test_bm25_ranks_by_shared_words_and_shows_at_most_k(tmp_path):
    library = _library(tmp_path, k=2)
    task = Task(id="t", family="t", prompt="Write `primes_below(n)`: every prime number below n.")
    assert [s.name for s in library.retrieve(task, 5)][0] == "is_prime"
    three = Task(id="t2", family="t", prompt="Sum the digits of n, say whether n is prime, count vowels of a word.")
    assert len(library.retrieve(three, 5)) == 2  # capped at config.k = 2
    assert {s.name for s in _library(tmp_path / "k4", k=4).retrieve(three, 5)} == {
        "digit_sum", "is_prime", "count_vowels_in"}  # reverse_words shares no word with the task
    assert library.retrieve(PARAPHRASE, 3) == []  # no word in common with any skill


@pytest.mark.slow
def test_dense_retrieval_finds_paraphrases_and_skips_unrelated_skills(tmp_path):
    library = _library(tmp_path, retriever="dense")
    assert [s.name for s in library.retrieve(PARAPHRASE, 1)] == ["digit_sum"]
    assert [s.name for s in library.retrieve(FLIP, 1)] == ["reverse_words"]
    assert library.retrieve(UNRELATED, 3) == []  # below min_similarity: nothing shown
