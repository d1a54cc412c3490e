"""The padded path's decode loop (finished rows leave the batch) vs ``model.generate`` (every row rides
until the longest one ends), on the same prompts, in the same run.

The prompts are the chat prompts the LLM agent sends for ``--tasks`` held-out Code-v0 tasks (one
batch, like a rollout step). Each side generates them ``--repeats`` times, interleaved, greedy, with
prefix reuse off so both prefill the whole prompt; it prints wall time, generated tokens, the
compute the padded batch spent on rows that had already ended (``model.generate`` only), the ratio
(target > 1: the loop is faster) and whether both produced the same tokens (greedy: they should).

Run: ``python bench/decode.py [--model embedded|tiny|DIR] [--tasks 24] [--max-tokens 160] [--repeats 2]``
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

import selfgym
from selfgym.agents.hf import TransformersConfig, TransformersPolicy
from selfgym.agents.models import tiny_model_dir
from selfgym.agents.policy import SamplingParams

SYSTEM = "You write correct, minimal Python. Reply with one ```python code block and nothing else."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--tasks", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    model = str(tiny_model_dir()) if args.model == "tiny" else args.model
    loop = TransformersPolicy.load(TransformersConfig(model=model, device="cpu", prefix_cache_mb=0))
    plain = TransformersPolicy(loop.model, loop.tokenizer, dataclasses.replace(loop.config))
    plain._loopable = False  # the baseline: transformers' own generate on the padded batch
    tasks = list(selfgym.make_task_source("code").tasks("heldout", limit=args.tasks))
    prompts = [loop.encode([{"role": "system", "content": SYSTEM}, {"role": "user", "content": t.prompt}])
               for t in tasks]
    params = SamplingParams(max_tokens=args.max_tokens, temperature=0)
    loop.generate_ids(prompts[:2], dataclasses.replace(params, max_tokens=4))  # warm-up
    plain.generate_ids(prompts[:2], dataclasses.replace(params, max_tokens=4))
    times: dict[str, list[float]] = {"loop": [], "generate": []}
    outputs: dict[str, list[list[int]]] = {}
    for _ in range(args.repeats):
        for name, policy in (("generate", plain), ("loop", loop)):
            start = time.perf_counter()
            out = policy.generate_ids(prompts, params)
            times[name].append(time.perf_counter() - start)
            outputs[name] = [c.completion_ids for c in out]
    lengths = [len(ids) for ids in outputs["loop"]]
    steps = max(lengths)
    wasted = 1 - sum(lengths) / (len(lengths) * steps)
    same = sum(a == b for a, b in zip(outputs["loop"], outputs["generate"], strict=True))
    print(f"{len(prompts)} prompts ({min(map(len, prompts))}-{max(map(len, prompts))} tokens), greedy, "
          f"at most {args.max_tokens} new tokens; {torch.get_num_threads()} threads")
    print(f"generated {sum(lengths)} tokens, rows end after {min(lengths)}-{steps} (median "
          f"{statistics.median(lengths):.0f}); model.generate spends {wasted:.0%} of its row-steps on ended rows")
    for name in ("generate", "loop"):
        best = min(times[name])
        print(f"  {name:9s} best {best:6.2f}s  median {statistics.median(times[name]):6.2f}s  "
              f"{sum(lengths) / best:6.1f} tok/s")
    print(f"ratio (generate / loop, best): {min(times['generate']) / min(times['loop']):.2f}x  "
          f"(target > 1); same tokens in {same}/{len(prompts)} rows")


if __name__ == "__main__":
    main()
