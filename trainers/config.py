"""The pieces every trainer's config is built from: optimisation, LoRA, where it runs.

Each algorithm config (``RFTConfig``, ``GRPOConfig``, ``DPOConfig``) holds a ``TrainConfig`` as
``train`` plus its own knobs, so the shared settings are written (and documented) once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from selfgym.errors import ConfigError

__all__ = ["LoraSettings", "Precision", "TrainConfig"]

Precision = Literal["auto", "fp32", "bf16"]


@dataclass(frozen=True, kw_only=True)
class LoraSettings:
    """A LoRA adapter (peft) trained on top of a frozen base model."""

    r: int = field(default=16, metadata={"help": "rank of the low-rank update"})
    alpha: int = field(default=32, metadata={"help": "scaling numerator: the update is scaled by alpha / r"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the adapter input"})
    target_modules: str | tuple[str, ...] = field(
        default="all-linear",
        metadata={"help": "module names to adapt, or 'all-linear' (every linear layer but the output head)"})

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ConfigError(f"LoraSettings.r must be >= 1, got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"LoraSettings.dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation settings shared by every trainer."""

    learning_rate: float = field(default=1e-5, metadata={"help": "AdamW learning rate (LoRA likes ~1e-4)"})
    epochs: int = field(default=1, metadata={"help": "passes over the selected data per train() call"})
    batch_size: int = field(default=8, metadata={"help": "sequences (DPO: pairs) per optimizer step and process"})
    micro_batch_size: int = field(
        default=4, metadata={"help": "sequences per forward pass; gradients accumulate up to batch_size"})
    max_length: int | None = field(
        default=None, metadata={"help": "longest training sequence in tokens; longer turns are cut at the end"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm (0 disables it)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    lora: LoraSettings | None = field(
        default_factory=LoraSettings, metadata={"help": "LoRA adapter settings; None trains every weight"})
    activation_checkpointing: bool = field(
        default=False, metadata={"help": "recompute activations in the backward pass: less memory, more compute "
                                         "(switched off again after each train() call, so generation keeps its cache)"})
    precision: Precision = field(
        default="auto", metadata={"help": "'auto' = bf16 on a CUDA GPU that supports it, fp32 on the CPU"})
    seed: int = field(default=0, metadata={"help": "seed of data order and adapter initialisation"})

    def __post_init__(self) -> None:
        if self.learning_rate <= 0:
            raise ConfigError(f"TrainConfig.learning_rate must be > 0, got {self.learning_rate}")
        if self.epochs < 1:
            raise ConfigError(f"TrainConfig.epochs must be >= 1, got {self.epochs}")
        if self.micro_batch_size < 1 or self.batch_size < self.micro_batch_size:
            raise ConfigError(
                f"TrainConfig needs 1 <= micro_batch_size <= batch_size, got micro_batch_size="
                f"{self.micro_batch_size}, batch_size={self.batch_size}")
        if self.batch_size % self.micro_batch_size:
            raise ConfigError(
                f"TrainConfig.batch_size ({self.batch_size}) must be a multiple of micro_batch_size "
                f"({self.micro_batch_size}): the optimizer steps after whole micro-batches")
        if self.max_length is not None and self.max_length < 2:
            raise ConfigError(f"TrainConfig.max_length must be >= 2 or None, got {self.max_length}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"TrainConfig.precision must be 'auto', 'fp32' or 'bf16', got {self.precision!r}")

    @property
    def accumulation_steps(self) -> int:
        """Micro-batches per optimizer step."""
        return self.batch_size // self.micro_batch_size
