"""Decontamination benchmark: checking candidate tasks against a held-out set.

Baseline, measured in the same run: the pairwise check (``overlap`` of the candidate with every
held-out task, keeping the largest), which is what a naive screen does. Against it: the inverted
n-gram index of ``Decontaminator`` (build once, then look up only the candidate's n-grams). Both
must agree on every candidate; the benchmark checks that and prints checks per second and the ratio.

    python bench/decontam.py            # a few seconds
    python bench/decontam.py --heldout 2000 --candidates 500
"""

from __future__ import annotations

import argparse
import time

from selfgym.decontam import DecontamConfig, Decontaminator, overlap
from selfgym.envs.code.datasets import humaneval_tasks
from selfgym.envs.code.families import FAMILIES
from selfgym.envs.generators.context import oracle_proposal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heldout", type=int, default=700, help="procedural held-out tasks (plus HumanEval's 164)")
    parser.add_argument("--candidates", type=int, default=200)
    args = parser.parse_args()

    per_family = max(1, args.heldout // len(FAMILIES))
    heldout = [t for f in FAMILIES.values() for t in f.tasks("heldout", limit=per_family)]
    heldout += list(humaneval_tasks().tasks("heldout"))
    train = [t for f in FAMILIES.values() for t in f.tasks("train", limit=args.candidates // len(FAMILIES) + 1)]
    # half new tasks (derived from train tasks), half near-copies of held-out prompts
    candidates = [oracle_proposal(t).prompt() for t in train[: args.candidates // 2]]
    candidates += [h.prompt + " Mind the edge cases." for h in heldout[: args.candidates - len(candidates)]]
    config = DecontamConfig()

    clock = time.perf_counter()
    naive = [max(overlap(c, h.prompt, config.ngram) for h in heldout) for c in candidates]
    naive_s = time.perf_counter() - clock

    clock = time.perf_counter()
    index = Decontaminator(heldout, config)
    build_s = time.perf_counter() - clock
    clock = time.perf_counter()
    matches = [index.closest(c) for c in candidates]
    index_s = time.perf_counter() - clock

    indexed = [m.overlap if m else 0.0 for m in matches]
    disagree = sum(abs(a - b) > 1e-9 for a, b in zip(naive, indexed, strict=True))
    flagged = sum(v > config.max_overlap for v in indexed)
    print(f"held-out tasks: {len(heldout)}, candidates: {len(candidates)}, flagged: {flagged}, "
          f"disagreements with the pairwise check: {disagree}")
    print(f"pairwise (baseline): {len(candidates) / naive_s:10.1f} checks/s")
    print(f"inverted index:      {len(candidates) / index_s:10.1f} checks/s  (build {build_s * 1000:.0f} ms once)")
    print(f"ratio: {naive_s / index_s:.1f}x faster per check; "
          f"{naive_s / (index_s + build_s):.1f}x including the build")


if __name__ == "__main__":
    main()
