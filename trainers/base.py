"""The trainer interface every algorithm follows, and what a training call reports."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from selfgym.types import Trajectory

__all__ = ["TrainResult", "Trainer"]


@dataclass
class TrainResult:
    """What one ``Trainer.train`` call did.

    Attributes:
        metrics: namespaced figures of the call (``losses/…``, ``charts/…``, ``data/…``, ``perf/…``).
        losses: the training loss of every optimizer step, in order.
        steps: optimizer steps taken (0 when the data carried no training signal).
    """

    metrics: dict[str, float] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    steps: int = 0

    @property
    def first_loss(self) -> float:
        return self.losses[0] if self.losses else math.nan

    @property
    def last_loss(self) -> float:
        return self.losses[-1] if self.losses else math.nan


@runtime_checkable
class Trainer(Protocol):
    """Improves a policy from trajectories.

    ``train`` takes every candidate trajectory (held-out tasks already left out) and chooses its own
    data: RFT keeps successes, GRPO compares the attempts of each task, DPO pairs success with
    failure. It updates ``model`` in place; ``model`` is what a checkpoint saves.
    """

    algorithm: str
    model: Any

    def train(self, trajectories: list[Trajectory]) -> TrainResult: ...
