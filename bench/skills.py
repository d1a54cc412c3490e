"""Skill library hot paths: retrieval per episode and the ``skills`` module written at each reset.

A library of ``--skills`` verified-looking functions (several stored versions each, so the store
holds more rows than active skills) lives in a real SQLite store. Measured in the same run:

- **retrieve**: ``SkillLibrary.retrieve`` for a stream of task prompts (skills read once, BM25
  index kept while the library is unchanged), against two baselines: a fresh BM25 index per query,
  and reading the store plus a fresh index per query;
- **reset**: ``SkillsWrapper.reset`` on Code-v0 (library read, ``skills.py`` written, retrieval
  done by the agent afterwards is not included), against a plain Code-v0 reset.

Run: ``python bench/skills.py [--skills 200] [--versions 3] [--queries 200]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np

import selfgym
from selfgym.envs.code.families import FAMILIES
from selfgym.skills import Skill, SkillLibrary, SkillsConfig, SkillsWrapper
from selfgym.store import Store
from selfgym.types import Task

WORDS = ("sum digits count vowels reverse words sort list merge intervals parse date clamp value rotate string "
         "prime factors gcd lcm fibonacci binary search matrix transpose flatten nested dedupe keep order "
         "balanced brackets run length encode decode caesar shift palindrome anagram median mode").split()


def fill(library: SkillLibrary, n: int, versions: int, rng: np.random.Generator) -> None:
    """``n`` skills of ``versions`` stored rows each, described by random topic words."""
    for i in range(n):
        words = list(rng.choice(WORDS, size=4, replace=False))
        name = "_".join(words[:2]) + f"_{i}"
        for v in range(versions):
            library.add(Skill(name=name, description=" ".join(words) + f" (revision {v})",
                              code=f"def {name}(x):\n    return x\n", signature=f"{name}(x)",
                              tests=f"assert {name}(1) == 1"))


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of one call of ``fn`` over ``repeats`` calls (after one warm-up call)."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skills", type=int, default=200)
    parser.add_argument("--versions", type=int, default=3)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    family = FAMILIES["strings"]
    tasks = [family.make(i, 0.5) for i in range(args.queries)]
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        store.create_run("bench", {})
        library = SkillLibrary(store, SkillsConfig(mode="read-write", k=3), run_id="bench")
        fill(library, args.skills, args.versions, rng)
        queries = iter(tasks * 1000)

        def retrieve() -> object:
            return library.retrieve(next(queries), 3)

        def retrieve_rebuilt() -> object:
            library._index_key = None  # the baseline: a fresh BM25 index per query
            return library.retrieve(next(queries), 3)

        def retrieve_reread() -> object:
            library.refresh()  # the baseline: the store read and the index built for every query
            return retrieve_rebuilt()

        cached, rebuilt = timed(retrieve, args.queries), timed(retrieve_rebuilt, args.queries)
        reread = timed(retrieve_reread, args.queries)
        print(f"library: {args.skills} skills x {args.versions} stored versions ({len(store.memory('skill'))} rows)")
        print(f"  retrieve  {cached * 1e3:7.2f} ms   index per query {rebuilt * 1e3:7.2f} ms "
              f"({rebuilt / cached:5.1f}x)   store read + index per query {reread * 1e3:7.2f} ms "
              f"({reread / cached:5.1f}x)")
        plain = selfgym.make("selfgym/Code-v0", families="strings")
        wrapped = SkillsWrapper(selfgym.make("selfgym/Code-v0", families="strings"), library)
        seeds = iter(range(10**6))
        task: Task = tasks[0]
        base = timed(lambda: plain.reset(seed=next(seeds), options={"task": task}), 50)
        with_skills = timed(lambda: wrapped.reset(seed=next(seeds), options={"task": task}), 50)
        print(f"  reset     Code-v0 {base * 1e3:7.2f} ms   with the skills module {with_skills * 1e3:7.2f} ms   "
              f"ratio {with_skills / base:6.2f}x")


if __name__ == "__main__":
    main()
