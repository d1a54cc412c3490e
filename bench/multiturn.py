"""Multi-turn rollouts with and without KV-cache reuse across turns (the transformers backend).

Each workload (``env:turns``, default a 20-turn ``Tools-v0`` and a 10-turn ``Guess-v0``) is played
twice by the rollout engine with the same LLM agent, greedy, on the same model weights: once with
prefix reuse switched off (``prefix_cache_mb=0``, every turn prefills the whole dialogue: the
baseline) and once with it on. It prints wall time, prefilled and reused prompt tokens (the
policy's ``GenerationStats``) for both, the ratio against the baseline measured in the same run
(target >= 3x faster at 20 turns), and checks that both runs recorded the same turns: equal prompt
and completion ids, log-probabilities within float tolerance.

An episode the model ends early plays fewer turns; ``--scripted`` keeps every episode going for the
full turn count instead (after the env's episode ends, each next observation is a fixed "Go on."),
so the workload has the turn count it names whatever the model answers.

Run: ``python bench/multiturn.py [--episodes 2] [--max-tokens 128] [--workloads Tools-v0:20,Guess-v0:10]
[--dtype bfloat16]``
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import gymnasium
import torch

import selfgym
from selfgym.agents.hf import TransformersConfig, TransformersPolicy
from selfgym.agents.llm import AgentConfig, LLMAgent
from selfgym.agents.models import tiny_model_dir
from selfgym.agents.policy import GenerationStats, SamplingParams
from selfgym.run.rollout import RolloutConfig, run_rollouts

GO_ON = "Go on."


class _Endless(gymnasium.Wrapper):  # type: ignore[type-arg]
    """Keeps an episode going to ``turns`` steps: after the env's end, every observation is ``GO_ON``."""

    def __init__(self, env: gymnasium.Env, turns: int) -> None:
        super().__init__(env)
        self.turns, self.steps, self.ended = turns, 0, False

    def reset(self, **kwargs: Any) -> Any:
        self.steps, self.ended = 0, False
        return self.env.reset(**kwargs)

    def step(self, action: str) -> Any:
        self.steps += 1
        last = self.steps >= self.turns
        if self.ended:
            return GO_ON, 0.0, False, last, {}
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.ended = terminated or truncated
        if self.ended and not last:
            return observation, reward, False, False, info
        return observation, reward, terminated, truncated or last, info


def play(policy: TransformersPolicy, env_id: str, turns: int, args: argparse.Namespace) -> dict[str, Any]:
    """One rollout of ``args.episodes`` episodes; wall time, the policy's counters and the trajectories."""
    agent = LLMAgent(policy, AgentConfig(sampling=SamplingParams(max_tokens=args.max_tokens, temperature=0),
                                         max_prompt_tokens=args.max_prompt_tokens))
    config = RolloutConfig(max_concurrent=args.episodes, seed=args.seed, progress=False, stuck_after=0)  # every turn

    def make_env() -> gymnasium.Env:
        env = selfgym.make(env_id, max_episode_steps=turns)
        return _Endless(env, turns) if args.scripted else env

    before = policy.stats()
    start = time.perf_counter()
    result = run_rollouts(make_env, agent, args.episodes, config)
    return {"wall_s": time.perf_counter() - start, "stats": policy.stats() - before, "result": result}


def compare_turns(base: Sequence[Any], reuse: Sequence[Any]) -> tuple[int, int, float]:
    """Turns compared, turns whose ids differ, largest log-probability difference."""
    turns = differ = 0
    worst = 0.0
    for a, b in zip(base, reuse, strict=True):
        for x, y in zip(a.turns, b.turns, strict=False):
            turns += 1
            if x.prompt_ids != y.prompt_ids or x.completion_ids != y.completion_ids:
                differ += 1
                continue
            if x.logprobs and y.logprobs:
                worst = max(worst, max(abs(p - q) for p, q in zip(x.logprobs, y.logprobs, strict=True)))
        differ += abs(len(a.turns) - len(b.turns))
    return turns, differ, worst


def line(label: str, run: dict[str, Any]) -> str:
    stats: GenerationStats = run["stats"]
    turns = sum(len(t.turns) for t in run["result"].trajectories)
    return (f"  {label:<9} {run['wall_s']:7.1f} s wall, {stats.model_s:7.1f} s in the model, {turns} turns, "
            f"prefilled {stats.prefilled_tokens:,} + reused {stats.cached_tokens:,} prompt tokens, "
            f"{stats.generated_tokens:,} generated")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", help="embedded | tiny | a checkpoint dir")
    parser.add_argument("--workloads", default="selfgym/Tools-v0:20,selfgym/Guess-v0:10", help="env:turns,...")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--max-prompt-tokens", type=int, default=3072)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scripted", action="store_true", help="play every episode for the full turn count")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: the backend's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = str(tiny_model_dir()) if args.model == "tiny" else args.model
    reuse = TransformersPolicy.load(TransformersConfig(model=spec, batching="generate", dtype=args.dtype))
    base = TransformersPolicy(reuse.model, reuse.tokenizer, dataclasses.replace(reuse.config, prefix_cache_mb=0))
    base.generate([[{"role": "user", "content": "warm up"}]], SamplingParams(max_tokens=4))
    print(f"model {args.model} ({reuse.model.dtype}) on {reuse.device} ({torch.get_num_threads()} CPU threads), "
          f"{args.episodes} episodes "
          f"a workload, greedy, {args.max_tokens} new tokens a turn{', scripted turn count' if args.scripted else ''}")
    for workload in args.workloads.split(","):
        env_id, turns = workload.rsplit(":", 1)
        env_id = env_id if "/" in env_id else f"selfgym/{env_id}"
        print(f"{env_id}, {turns} turns:", flush=True)
        without = play(base, env_id, int(turns), args)
        print(line("no reuse", without), flush=True)
        reuse.prefix_cache.clear()
        with_reuse = play(reuse, env_id, int(turns), args)
        print(line("reuse", with_reuse), flush=True)
        compared, differ, worst = compare_turns(without["result"].trajectories, with_reuse["result"].trajectories)
        speedup = without["wall_s"] / with_reuse["wall_s"]
        prefill = without["stats"].prefilled_tokens / max(1, with_reuse["stats"].prefilled_tokens)
        print(f"  ratio reuse/no-reuse: {speedup:.2f}x faster (wall), {prefill:.1f}x fewer prefilled tokens; "
              f"{compared} turns compared, {differ} differ, max |logprob diff| {worst:.2e}")


if __name__ == "__main__":
    main()

