"""The trainers on a CUDA GPU (bf16 autocast through accelerate); skipped without one."""

from __future__ import annotations

import pytest
import torch

from selfgym.trainers import GRPOConfig, GRPOTrainer, LoraSettings, RFTConfig, RFTTrainer, TrainConfig
from selfgym.trainers.data import collate, trajectory_rows
from selfgym.trainers.model import token_logprobs
from selfgym.trainers.tiny import tiny_causal_lm, tiny_tokenizer, upper_half_rollouts

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

PROMPTS = [[2, 3 + i, 4 + i] for i in range(6)]


def config(**overrides) -> TrainConfig:
    base = {"learning_rate": 2e-2, "epochs": 4, "batch_size": 48, "micro_batch_size": 24,
            "lora": LoraSettings(r=8, alpha=16)}
    return TrainConfig(**{**base, **overrides})


def agent_logprob(model, episode) -> float:
    batch = collate(trajectory_rows(episode), pad_id=0).to(model.device)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        return float(token_logprobs(model, batch).float()[batch.agent_mask[:, 1:]].sum())


def test_grpo_trains_on_the_gpu_in_bf16():
    torch.manual_seed(0)
    model = tiny_causal_lm(seed=0)
    episodes = upper_half_rollouts(model, PROMPTS, attempts=8)
    trainer = GRPOTrainer(model, GRPOConfig(train=config()))
    assert trainer.accelerator.device.type == "cuda" and trainer.accelerator.mixed_precision == "bf16"
    winners = [e for e in episodes if e.success]
    before = [agent_logprob(trainer.model, e) for e in winners]
    result = trainer.train(episodes)
    after = [agent_logprob(trainer.model, e) for e in winners]
    assert next(trainer.model.parameters()).device.type == "cuda"
    assert result.steps == 4 and result.losses[-1] < result.losses[0]
    assert sum(a - b for a, b in zip(after, before, strict=True)) / len(winners) > 0.2
    # the trained policy still samples (KV cache on, same device)
    assert upper_half_rollouts(trainer.model, PROMPTS[:2], attempts=2)


def test_rft_trains_on_the_gpu_through_trl():
    torch.manual_seed(1)
    model = tiny_causal_lm(seed=1)
    episodes = upper_half_rollouts(model, PROMPTS, attempts=8)
    trainer = RFTTrainer(model, tiny_tokenizer(), RFTConfig(train=config(batch_size=8, micro_batch_size=8)))
    result = trainer.train(episodes)
    assert result.steps > 0 and result.losses[-1] < result.losses[0]
    assert next(trainer.model.parameters()).device.type == "cuda"
