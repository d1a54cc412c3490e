"""TRL's GRPOTrainer steps/s with selfgym's adapters against the same trainer on a plain reward function.

Three runs of ``GRPOTrainer`` on the same model (tiny test model by default), the same prompts
(``Code-v0`` tasks from ``task_dataset``), batch and completion budget, in one process:

- baseline: single-turn generation by TRL, scored by a plain reward function (a constant);
- ``rollout_func``: ``SelfgymRollout`` plays multi-turn ``Code-v0`` episodes (sandboxed tests
  between turns) with the trainer's weights;
- ``environment_factory``: TRL's own tool loop calling ``submit(code)`` on the adapter class.

It prints each run's optimizer steps/s and the ratio against the baseline. The adapters do more
work per step (several turns, the sandbox), so the ratio is the price of real multi-turn episodes,
not overhead alone; ``--turns 1`` makes the ``rollout_func`` episodes single-turn.

Run: ``python bench/trl_interop.py [--steps 4] [--tasks 4] [--max-tokens 32] [--turns 3] [--model DIR]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path, where its name would shadow trl.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from selfgym.agents.llm import AgentConfig  # noqa: E402
from selfgym.integrations.trl import (  # noqa: E402
    environment_factory,
    resolve_tasks,
    task_dataset,
    tool_calling_tokenizer,
)
from selfgym.integrations.trl_rollout import SelfgymRollout, episode_reward  # noqa: E402
from selfgym.models import tiny_model_dir  # noqa: E402
from selfgym.types import SamplingParams  # noqa: E402

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
ENV = "selfgym/Code-v0"


def constant_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    return [0.0 for _ in completions]


def run(args: argparse.Namespace, label: str, **trainer_kwargs: Any) -> float:
    """Train ``args.steps`` steps; return optimizer steps per second."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(args.model, padding_side="left")
    if "environment_factory" in trainer_kwargs:
        tokenizer = tool_calling_tokenizer(tokenizer)
    tasks = resolve_tasks(ENV, args.tasks)
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(output_dir=out, use_cpu=True, per_device_train_batch_size=2, num_generations=2,
                            max_steps=args.steps, max_completion_length=args.max_tokens * args.turns,
                            logging_steps=1, report_to=[], save_strategy="no", gradient_checkpointing=False,
                            disable_tqdm=True, max_tool_calling_iterations=args.turns)
        trainer = GRPOTrainer(model, args=config, train_dataset=task_dataset(ENV, tasks), processing_class=tokenizer,
                              **trainer_kwargs)
        started = time.perf_counter()
        trainer.train()
        elapsed = time.perf_counter() - started
    rate = trainer.state.global_step / elapsed
    print(f"{label:22s} {trainer.state.global_step} steps in {elapsed:6.1f} s: {rate:.3f} steps/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32, help="new tokens per turn")
    parser.add_argument("--turns", type=int, default=3, help="turn budget of an episode")
    parser.add_argument("--model", default=str(tiny_model_dir()))
    args = parser.parse_args()
    base = run(args, "plain reward function", reward_funcs=constant_reward)
    tasks = resolve_tasks(ENV, args.tasks)
    rollout = SelfgymRollout(ENV, tasks, agent=AgentConfig(sampling=SamplingParams(max_tokens=args.max_tokens)),
                             env_kwargs={"max_episode_steps": args.turns})
    multi = run(args, "rollout_func", reward_funcs=episode_reward, rollout_func=rollout)
    factory = run(args, "environment_factory", environment_factory=environment_factory(ENV))
    print(f"rollout_func / plain: {multi / base:.2f}x steps/s; environment_factory / plain: {factory / base:.2f}x")


if __name__ == "__main__":
    main()
