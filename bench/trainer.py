"""Training throughput: our GRPO step vs TRL's ``GRPOTrainer``, same model, batch and lengths.

Both train the same LoRA (r=16, all linear layers) on the same model, from the same synthetic
rollouts: ``--batch`` sequences per optimizer step (``--generations`` per prompt) of
``--prompt-len`` prompt and ``--completion-len`` completion tokens, with behaviour logprobs and
0/1 rewards, clip 0.2/0.28, token-level loss, no KL. TRL gets the rollouts through its
``rollout_func`` hook, so neither side generates: the figure is training tokens (prompt +
completion) per second of optimizer steps after a warm-up step. The ratio is ours / TRL's,
measured in the same run; on a CUDA machine both run on the GPU (bf16 autocast).

Run: ``python bench/trainer.py [--model tiny|embedded|DIR] [--batch 8] [--steps 4]``
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from typing import Any

import numpy as np
import torch

from selfgym.trainers import GRPOConfig, GRPOTrainer, LoraSettings, TrainConfig
from selfgym.trainers.tiny import tiny_causal_lm, tiny_tokenizer
from selfgym.types import Trajectory, Turn

LORA = LoraSettings(r=16, alpha=32)


def load(spec: str) -> tuple[Any, Any]:
    """The model and tokenizer to benchmark: the tiny random Llama, ``embedded`` or a model dir."""
    if spec == "tiny":
        return tiny_causal_lm(vocab_size=512, hidden_size=64, layers=2), tiny_tokenizer(512)
    from selfgym.agents.models import load_model

    model, tokenizer = load_model(spec, dtype=torch.float32)
    return model.train(), tokenizer


def rollouts(rng: np.random.Generator, vocab: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """``batch`` synthetic single-turn rollouts, ``generations`` per prompt (low ids avoid special tokens)."""
    out = []
    for g in range(args.batch // args.generations):
        prompt = rng.integers(3, vocab - 1, size=args.prompt_len).tolist()
        for _ in range(args.generations):
            out.append({"group": g, "prompt_ids": prompt,
                        "completion_ids": rng.integers(3, vocab - 1, size=args.completion_len).tolist(),
                        "logprobs": (-rng.random(args.completion_len) * 5).tolist(),
                        "reward": float(rng.integers(0, 2))})
    return out


def bench_ours(model: Any, data: list[dict[str, Any]], args: argparse.Namespace) -> float:
    trainer = GRPOTrainer(model, GRPOConfig(skip_zero_advantage=False, train=TrainConfig(
        learning_rate=1e-5, batch_size=args.batch, micro_batch_size=args.micro_batch, lora=LORA)))
    trajectories = [Trajectory(task_id=f"p{r['group']}", env_id="bench", total_reward=r["reward"], turns=[
        Turn(observation="", action="", prompt_ids=r["prompt_ids"], completion_ids=r["completion_ids"],
             logprobs=r["logprobs"], reward=r["reward"])]) for r in data]
    trainer.train(trajectories)  # warm-up
    _sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        assert trainer.train(trajectories).steps == 1
    _sync()
    return args.steps * len(data) * (args.prompt_len + args.completion_len) / (time.perf_counter() - start)


def bench_trl(model: Any, tokenizer: Any, data: list[dict[str, Any]], args: argparse.Namespace) -> float:
    import datasets
    import trl
    from peft import LoraConfig
    from transformers import TrainerCallback

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    by_prompt = {r["group"]: r for r in data}
    texts = {f"prompt {g}": g for g in by_prompt}
    served = {g: 0 for g in by_prompt}

    def rollout_func(prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        rows = []
        for p in prompts:
            g = texts[p]
            rows.append(data[g * args.generations + served[g] % args.generations])
            served[g] += 1
        return {k: [r[k] for r in rows] for k in ("prompt_ids", "completion_ids", "logprobs")} | {
            "reward": [r["reward"] for r in rows]}

    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *_: Any, **__: Any) -> None:
            _sync()
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        config = trl.GRPOConfig(
            output_dir=out, per_device_train_batch_size=args.batch, num_generations=args.generations,
            gradient_accumulation_steps=1, max_completion_length=args.completion_len, max_steps=args.steps + 1,
            learning_rate=1e-5, beta=0.0, num_iterations=1, epsilon=0.2, epsilon_high=0.28, loss_type="dapo",
            report_to="none", save_strategy="no", logging_steps=1000, disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(), bf16=torch.cuda.is_available(), dataloader_num_workers=0)
        dataset = datasets.Dataset.from_dict({"prompt": list(texts) * (args.steps + 2)})
        trainer = trl.GRPOTrainer(
            model=model, reward_funcs=lambda completions, reward, **_: reward, args=config, train_dataset=dataset,
            processing_class=tokenizer, rollout_func=rollout_func, callbacks=[Clock()],
            peft_config=LoraConfig(r=LORA.r, lora_alpha=LORA.alpha, target_modules="all-linear",
                                   task_type="CAUSAL_LM"))
        _sync()
        start = time.perf_counter()
        trainer.train()
    stamps.insert(0, start)
    seconds = stamps[-1] - stamps[1]  # steps after the first (warm-up) one
    return args.steps * len(data) * (args.prompt_len + args.completion_len) / seconds


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny", help="tiny | embedded | a model dir")
    parser.add_argument("--batch", type=int, default=8, help="sequences per optimizer step")
    parser.add_argument("--micro-batch", type=int, default=8, help="sequences per forward pass (ours)")
    parser.add_argument("--generations", type=int, default=4, help="completions per prompt (group size)")
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--completion-len", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4, help="timed optimizer steps, after one warm-up step")
    parser.add_argument("--repeats", type=int, default=2,
                        help="alternate the two measurements this many times and keep each one's best "
                             "(a busy machine slows one run more than the other)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = load(args.model)
    vocab = model.get_input_embeddings().num_embeddings
    data = rollouts(np.random.default_rng(0), min(vocab, tokenizer.vocab_size), args)
    ours = theirs = 0.0
    for _ in range(args.repeats):  # each run wraps a fresh copy in its own LoRA adapter
        ours = max(ours, bench_ours(copy.deepcopy(model), data, args))
        theirs = max(theirs, bench_trl(copy.deepcopy(model), tokenizer, data, args))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    print(f"GRPO training step, model={args.model}, batch={args.batch}x({args.prompt_len}+{args.completion_len}) "
          f"tokens, LoRA r={LORA.r}, {device}, best of {args.repeats}")
    print(f"  TRL GRPOTrainer (baseline) {theirs:10.0f} tokens/s")
    print(f"  selfgym GRPOTrainer        {ours:10.0f} tokens/s")
    print(f"  ratio ours / TRL           {ours / theirs:10.2f}x")


if __name__ == "__main__":
    main()
