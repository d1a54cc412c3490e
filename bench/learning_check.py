"""Learning check: does a short RFT (or GRPO) run raise the embedded model's held-out success?

The embedded SmolLM2-135M-Instruct, as the LLM agent, writes functions for one easy procedural
code family (``selfgym/Code-v0``, one attempt per episode). Held-out tasks (seeds from
``HELDOUT_SEED_BASE``) are solved greedily before and after training. Training rounds sample
``--attempts`` episodes on each of ``--train-tasks`` fresh train tasks, store them, and run the
trainer on that round's trajectories through ``train_from_store`` (checkpoints land in the run dir).
It prints success before/after with 95% bootstrap intervals, and the paired difference over the
same held-out tasks; ``learning_check.json`` in the run dir keeps the figures, whatever they are.

Run: ``python bench/learning_check.py [--algorithm rft|grpo] [--rounds 3] [--heldout 48]`` (about 30 min
on 2 CPU cores; the defaults are the settings of the reported run)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import selfgym
from selfgym.agents.hf import TransformersConfig, TransformersPolicy
from selfgym.agents.llm import AgentConfig, LLMAgent
from selfgym.agents.models import load_model
from selfgym.agents.policy import SamplingParams
from selfgym.envs.code.families import FAMILIES
from selfgym.envs.tasks import HELDOUT_SEED_BASE
from selfgym.run.rollout import RolloutConfig, run_rollouts
from selfgym.stats import bootstrap_ci
from selfgym.store import Store
from selfgym.trainers import GRPOConfig, LoraSettings, RFTConfig, TrainConfig, make_trainer, train_from_store
from selfgym.types import Task

SYSTEM = "You write correct, minimal Python. Reply with one ```python code block and nothing else."


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algorithm", choices=("rft", "grpo"), default="rft")
    parser.add_argument("--family", default="arithmetic", choices=sorted(FAMILIES))
    parser.add_argument("--difficulty", type=float, default=0.5)
    parser.add_argument("--heldout", type=int, default=48, help="held-out tasks scored before and after")
    parser.add_argument("--train-tasks", type=int, default=32, help="fresh train tasks per round")
    parser.add_argument("--attempts", type=int, default=4, help="sampled episodes per train task (group size)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature of training rollouts")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-per-task", type=int, default=2, help="RFT: successes kept per task")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/learning-check"))
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def tasks(family: str, difficulty: float, n: int, *, heldout: bool, offset: int = 0) -> list[Task]:
    source = FAMILIES[family]
    base = HELDOUT_SEED_BASE if heldout else 0
    return [source.make(base + offset + i, difficulty) for i in range(n)]


def score(agent: LLMAgent, env_factory: Any, chosen: list[Task], store: Store, label: str) -> list[bool]:
    result = run_rollouts(env_factory, agent, chosen, RolloutConfig(group_size=1, progress=False),
                          store=store, run_id=f"eval-{label}")
    by_task = {t.task_id: t.success for t in result.trajectories if not t.aborted}
    return [bool(by_task.get(t.id, False)) for t in chosen]


def summary(outcomes: list[bool]) -> dict[str, Any]:
    values = [float(x) for x in outcomes]
    return {"success_rate": float(np.mean(values)), "ci95": bootstrap_ci(values), "n": len(values)}


def make_trainer_for(args: argparse.Namespace, model: Any, tokenizer: Any) -> Any:
    train = TrainConfig(learning_rate=args.lr, epochs=args.epochs, batch_size=8, micro_batch_size=4,
                        lora=LoraSettings(r=16, alpha=32), seed=args.seed)
    if args.algorithm == "rft":
        return make_trainer("rft", model, tokenizer=tokenizer,
                            config=RFTConfig(train=train, max_per_task=args.max_per_task))
    return make_trainer("grpo", model, config=GRPOConfig(train=train, temperature=args.temperature,
                                                         advantage="loo"))


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model, tokenizer = load_model("embedded")
    policy = TransformersPolicy(model, tokenizer, TransformersConfig(name="embedded", max_batch_size=32))
    config = AgentConfig(system_prompt=SYSTEM, max_prompt_tokens=1024,
                         sampling=SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature))
    greedy = LLMAgent(policy, dataclasses.replace(config, sampling=SamplingParams(max_tokens=args.max_tokens,
                                                                                  temperature=0.0)))
    sampler = LLMAgent(policy, config)

    def env_factory() -> Any:
        return selfgym.make("selfgym/Code-v0", families=args.family, max_attempts=1)

    run_dir = args.run_dir
    store = Store(run_dir)
    store.create_run("learning-check", vars(args) | {"run_dir": str(run_dir)})
    heldout = tasks(args.family, args.difficulty, args.heldout, heldout=True)
    before = score(greedy, env_factory, heldout, store, "before")
    print(f"before: {summary(before)}  ({time.perf_counter() - started:.0f}s)", flush=True)

    trainer = make_trainer_for(args, model, tokenizer)
    parent, rounds = None, []
    for r in range(args.rounds):
        chosen = tasks(args.family, args.difficulty, args.train_tasks, heldout=False, offset=r * args.train_tasks)
        rollout = run_rollouts(env_factory, sampler, chosen, RolloutConfig(group_size=args.attempts, seed=args.seed
                                                                           + 1000 * r, progress=False),
                               store=store, run_id="learning-check", iteration=r, policy_id=parent or "embedded")
        result, checkpoint = train_from_store(trainer, store, run_id="learning-check", iteration=r, run_dir=run_dir,
                                              base_model="embedded", parent_id=parent, since_iteration=r)
        policy.model = trainer.model  # the agent now samples from the trained adapter
        parent = checkpoint.id if checkpoint else parent
        rounds.append({"round": r, "train_success": rollout.success_rate, "steps": result.steps,
                       "metrics": result.metrics, "checkpoint": checkpoint.path if checkpoint else None})
        print(f"round {r}: train success {rollout.success_rate:.3f}, {result.steps} steps, "
              f"loss {result.first_loss:.3f} -> {result.last_loss:.3f}  ({time.perf_counter() - started:.0f}s)",
              flush=True)

    after = score(greedy, env_factory, heldout, store, "after")
    diff = [float(a) - float(b) for a, b in zip(after, before, strict=True)]
    report = {"args": {k: str(v) for k, v in vars(args).items()}, "before": summary(before),
              "after": summary(after), "paired_difference": {"mean": float(np.mean(diff)), "ci95": bootstrap_ci(diff)},
              "rounds": rounds, "seconds": time.perf_counter() - started}
    (run_dir / "learning_check.json").write_text(json.dumps(report, indent=2))
    b, a = report["before"], report["after"]
    print(f"held-out success ({args.family}, d={args.difficulty}, n={len(heldout)}, greedy):")
    print(f"  before {b['success_rate']:.3f}  95% CI [{b['ci95'][0]:.3f}, {b['ci95'][1]:.3f}]")
    print(f"  after  {a['success_rate']:.3f}  95% CI [{a['ci95'][0]:.3f}, {a['ci95'][1]:.3f}]")
    d = report["paired_difference"]
    print(f"  paired difference {d['mean']:+.3f}  95% CI [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]")
    store.close()


if __name__ == "__main__":
    main()
