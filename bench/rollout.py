"""Rollout throughput: the rollout engine vs the backend's raw batched generate on the same prompts.

The engine plays ``--episodes`` Guess episodes at once with the LLM agent (prompt building,
budget trimming, env steps, token-exact turns, a real SQLite store written as episodes end). Every
batch of prompts it sends to the policy is recorded; then the same batches, already tokenised, go
straight to ``TransformersPolicy.generate_ids`` with the same sampling seeds, so both sides generate
the same tokens. The ratio is engine tokens/s over raw tokens/s (target >= 0.9), measured in the
same run after a warm-up call (best and median of ``--repeats`` interleaved runs).

On a CUDA machine it also samples GPU utilisation during the engine run (pynvml, else
``nvidia-smi``) and compares tokens/s of plain padded ``generate`` with the continuous-batching
(paged KV cache) path on one large batch.

Run: ``python bench/rollout.py [--model embedded|tiny|DIR] [--episodes 16] [--max-tokens 32]``
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from typing import Any

import torch

from selfgym.agents.hf import TransformersConfig, TransformersPolicy
from selfgym.agents.llm import AgentConfig, LLMAgent
from selfgym.agents.models import tiny_model_dir
from selfgym.agents.policy import SamplingParams
from selfgym.agents.testing import CountingPolicy
from selfgym.run.rollout import RolloutConfig, run_rollouts
from selfgym.seeds import derive_seed
from selfgym.store import Store


class GpuSampler:
    """Samples GPU utilisation (%) every ``interval_s`` in a background thread."""

    def __init__(self, interval_s: float = 0.1) -> None:
        self.interval_s, self.samples, self._stop = interval_s, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> Any:
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
            return lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except Exception:  # no pynvml: ask nvidia-smi
            if shutil.which("nvidia-smi") is None:
                return None
            cmd = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                   f"--id={torch.cuda.current_device()}"]
            return lambda: float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()[0])

    def _run(self) -> None:
        read = self._read()
        while read is not None and not self._stop.is_set():
            self.samples.append(read())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> str:
        if not self.samples:
            return "gpu utilisation: not available"
        return (f"gpu utilisation: mean {sum(self.samples) / len(self.samples):.0f}%, "
                f"max {max(self.samples):.0f}% ({len(self.samples)} samples)")


def engine_run(policy: TransformersPolicy, args: argparse.Namespace) -> tuple[Any, CountingPolicy]:
    policy.prefix_cache.clear()  # each side reuses only the keys/values of its own earlier turns
    counted = CountingPolicy(policy)
    params = SamplingParams(max_tokens=args.max_tokens, temperature=1.0)
    agent = LLMAgent(counted, AgentConfig(sampling=params, max_prompt_tokens=args.max_prompt_tokens))
    config = RolloutConfig(max_concurrent=args.episodes, seed=args.seed, progress=False)
    with tempfile.TemporaryDirectory() as run_dir:
        result = run_rollouts("selfgym/Guess-v0", agent, args.episodes, config, store=Store(run_dir),
                              env_kwargs={"max_episode_steps": args.turns}, run_id="bench")
    return result, counted


def raw_run(policy: TransformersPolicy, counted: CountingPolicy, args: argparse.Namespace) -> tuple[int, float]:
    """The engine's prompt batches, pre-tokenised, through ``generate_ids`` with the engine's seeds."""
    batches = [[policy.encode(chat) for chat in batch] for batch in counted.prompts]
    policy.prefix_cache.clear()  # not the engine's: the raw side builds its own, turn by turn
    params = SamplingParams(max_tokens=args.max_tokens, temperature=1.0)
    tokens, seconds = 0, 0.0
    for step, batch in enumerate(batches):
        seeded = dataclasses.replace(params, seed=derive_seed(args.seed, "sampling", step))  # as the engine
        start = time.perf_counter()
        outs = policy.generate_ids(batch, seeded)
        seconds += time.perf_counter() - start
        tokens += sum(len(c.completion_ids) for c in outs)
    return tokens, seconds


def compare_paths(policy: TransformersPolicy, args: argparse.Namespace) -> None:
    """Plain padded generate vs continuous batching on one batch of prompts (GPU)."""
    prompts = [[{"role": "user", "content": f"Write a short story about the number {i}."}]
               for i in range(args.path_batch)]
    ids = [policy.encode(p) for p in prompts]
    params = SamplingParams(max_tokens=args.path_tokens, temperature=1.0, seed=0)
    for batching in ("generate", "continuous"):
        variant = TransformersPolicy(policy.model, policy.tokenizer, dataclasses.replace(
            policy.config, batching=batching, max_batch_size=args.path_batch))
        variant.generate_ids(ids[:2], dataclasses.replace(params, max_tokens=8))  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        outs = variant.generate_ids(ids, params)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        tokens = sum(len(c.completion_ids) for c in outs)
        print(f"{batching:>10}: {tokens} tokens in {seconds:.2f} s = {tokens / seconds:,.0f} tok/s "
              f"({args.path_batch} prompts x {args.path_tokens} tokens)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", help="embedded | tiny | a checkpoint dir")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--turns", type=int, default=4, help="turn budget per episode")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--max-prompt-tokens", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="engine and raw runs, interleaved")
    parser.add_argument("--path-batch", type=int, default=64, help="GPU path comparison: prompts")
    parser.add_argument("--path-tokens", type=int, default=256, help="GPU path comparison: new tokens")
    args = parser.parse_args()
    spec = str(tiny_model_dir()) if args.model == "tiny" else args.model
    policy = TransformersPolicy.load(TransformersConfig(model=spec, batching="generate"))
    on_gpu = policy.device.type == "cuda"
    print(f"model {args.model} on {policy.device} ({torch.get_num_threads()} CPU threads), "
          f"{args.episodes} episodes x {args.turns} turns, {args.max_tokens} new tokens a turn")
    policy.generate([[{"role": "user", "content": "warm up"}]], SamplingParams(max_tokens=4))

    sampler = GpuSampler()
    engine_tps, raw_tps = [], []
    with sampler if on_gpu else _nothing():
        for _ in range(args.repeats):  # interleaved, so load on the machine hits both sides alike
            result, counted = engine_run(policy, args)
            engine_tps.append(result.generated_tokens / result.wall_s)
            raw_tokens, raw_s = raw_run(policy, counted, args)
            raw_tps.append(raw_tokens / raw_s)
    overhead = result.wall_s - counted.seconds
    print(f"engine: {result.generated_tokens} tokens a run, {result.steps} generate calls of "
          f"{min(counted.calls)}-{max(counted.calls)} prompts, {len(result.trajectories)} episodes stored; "
          f"time outside generate {overhead:.3f} s ({overhead / result.wall_s:.1%})")
    print(f"raw generate: {raw_tokens} tokens a run (the same prompts, seeds and tokens)")
    print(f"engine tok/s: best {max(engine_tps):,.1f}, median {statistics.median(engine_tps):,.1f} "
          f"({', '.join(f'{x:,.0f}' for x in engine_tps)})")
    print(f"raw    tok/s: best {max(raw_tps):,.1f}, median {statistics.median(raw_tps):,.1f} "
          f"({', '.join(f'{x:,.0f}' for x in raw_tps)})")
    print(f"ratio engine/raw: {max(engine_tps) / max(raw_tps):.3f} best-of-{args.repeats}, "
          f"{statistics.median(engine_tps) / statistics.median(raw_tps):.3f} median (target >= 0.90)")
    if on_gpu:
        print(sampler.summary())
        compare_paths(policy, args)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: Any) -> None:
        return None


if __name__ == "__main__":
    main()
