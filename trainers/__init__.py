"""Trainers (installed as ``selfgym.trainers``): RFT, multi-turn GRPO and DPO on token-exact trajectories.

Each trainer takes the candidate trajectories of a run and updates a policy in place::

    from selfgym.trainers import GRPOConfig, GRPOTrainer, save_checkpoint
    trainer = GRPOTrainer(model, GRPOConfig())
    result = trainer.train(trajectories)          # TrainResult: losses, metrics
    save_checkpoint(trainer.model, run_dir / "checkpoints" / "it1", algorithm="grpo", base_model="embedded")

``train_from_store`` does the whole step against a run's store (selection, held-out guard,
training, checkpoint registration).
"""

from __future__ import annotations

from .base import Trainer, TrainResult
from .checkpoint import (
    CHECKPOINT_META,
    CheckpointInfo,
    load_checkpoint,
    merge_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from .config import LoraSettings, TrainConfig
from .data import TokenRow, is_token_exact, trajectory_rows
from .dpo import DPOConfig, DPOTrainer
from .grpo import GRPOConfig, GRPOTrainer
from .losses import (
    approx_kl,
    clipped_pg_loss,
    discounted_returns,
    group_advantages,
    kl_k3,
    masked_mean,
)
from .rft import RFTConfig, RFTTrainer
from .run import make_trainer, train_from_store

__all__ = [
    "CHECKPOINT_META",
    "CheckpointInfo",
    "DPOConfig",
    "DPOTrainer",
    "GRPOConfig",
    "GRPOTrainer",
    "LoraSettings",
    "RFTConfig",
    "RFTTrainer",
    "TokenRow",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "approx_kl",
    "clipped_pg_loss",
    "discounted_returns",
    "group_advantages",
    "is_token_exact",
    "kl_k3",
    "load_checkpoint",
    "make_trainer",
    "masked_mean",
    "merge_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
    "train_from_store",
    "trajectory_rows",
]
