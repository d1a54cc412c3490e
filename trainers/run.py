"""One training step against a run's store: select data, train, checkpoint, register.

This is what the gym loop calls after its rollouts::

    trainer = make_trainer("grpo", model, tokenizer=tokenizer)
    result, checkpoint = train_from_store(trainer, store, run_id=run, iteration=it, run_dir=run_dir,
                                          base_model="embedded", since_iteration=it)
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from selfgym.errors import ConfigError
from selfgym.store import Store
from selfgym.types import Trajectory, new_id

from .base import Trainer, TrainResult
from .checkpoint import CheckpointInfo, save_checkpoint
from .data import exclude_heldout, is_token_exact
from .dpo import DPOConfig, DPOTrainer
from .grpo import GRPOConfig, GRPOTrainer
from .rft import RFTConfig, RFTTrainer

__all__ = ["ALGORITHMS", "candidate_trajectories", "make_trainer", "train_from_store"]

ALGORITHMS = ("rft", "grpo", "dpo")
log = logging.getLogger(__name__)


def make_trainer(algorithm: str, model: Any, *, tokenizer: Any | None = None,
                 config: RFTConfig | GRPOConfig | DPOConfig | None = None, reference: Any | None = None) -> Trainer:
    """Build a trainer by name (``rft``, ``grpo`` or ``dpo``)."""
    expected = {"rft": RFTConfig, "grpo": GRPOConfig, "dpo": DPOConfig}.get(algorithm)
    if expected is None:
        raise ConfigError(f"unknown trainer {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    if config is not None and not isinstance(config, expected):
        raise ConfigError(f"trainer {algorithm!r} takes a {expected.__name__}, got {type(config).__name__}")
    if algorithm == "grpo":
        return GRPOTrainer(model, config, reference=reference)  # type: ignore[arg-type]
    if algorithm == "rft":
        return RFTTrainer(model, tokenizer, config)  # type: ignore[arg-type]
    return DPOTrainer(model, tokenizer, config)  # type: ignore[arg-type]


def candidate_trajectories(store: Store, *, run_id: str | None = None,
                           since_iteration: int | None = None) -> tuple[list[Trajectory], dict[str, float]]:
    """The trajectories a trainer may learn from: not aborted, not an evaluation's episode (a run of
    kind ``eval``, whatever its tasks' split), not on a held-out task, token-exact."""
    evaluations = store.eval_run_ids()
    recent = [t for t in store.trajectories(run_id=run_id) if since_iteration is None or t.iteration >= since_iteration]
    found = [t for t in recent if t.run_id not in evaluations]
    heldout = {t.id for t in store.tasks(split="heldout")}
    allowed = exclude_heldout(found, heldout)
    exact = [t for t in allowed if is_token_exact(t)]
    if len(exact) < len(allowed):
        log.info("left out %d trajectories without token ids (scripted agents)", len(allowed) - len(exact))
    return exact, {"data/found": float(len(recent)), "data/left_out_eval": float(len(recent) - len(found)),
                   "data/left_out_heldout": float(len(found) - len(allowed)),
                   "data/left_out_not_token_exact": float(len(allowed) - len(exact))}


def train_from_store(
    trainer: Trainer,
    store: Store,
    *,
    run_id: str,
    iteration: int,
    run_dir: str | Path,
    base_model: str,
    parent_id: str | None = None,
    since_iteration: int | None = None,
    tokenizer: Any | None = None,
) -> tuple[TrainResult, CheckpointInfo | None]:
    """Train on the run's trajectories, log the metrics and save a registered checkpoint.

    Metrics go to the store as ``train/<algorithm>/<name>``. When the data held no training
    signal (no successes for RFT, no pairs for DPO, no contrast within any GRPO group) nothing is
    trained and no checkpoint is written: the returned checkpoint is None.

    Args:
        base_model: the spec the policy was loaded from, recorded in the checkpoint.
        parent_id: the checkpoint the policy started from.
        since_iteration: only trajectories of this iteration and later (None: the whole run).
    """
    candidates, selection = candidate_trajectories(store, run_id=run_id, since_iteration=since_iteration)
    result = trainer.train(candidates)
    result.metrics.update(selection)
    store.log_metrics(run_id, iteration, {f"train/{trainer.algorithm}/{k}": v for k, v in result.metrics.items()})
    if result.steps == 0:
        log.info("%s: no training signal in %d trajectories; no checkpoint", trainer.algorithm, len(candidates))
        return result, None
    checkpoint_id = new_id("ckpt-")
    directory = Path(run_dir) / "checkpoints" / f"it{iteration:04d}-{trainer.algorithm}-{checkpoint_id[5:13]}"
    config = getattr(trainer, "config", None)
    info = save_checkpoint(
        trainer.model, directory, algorithm=trainer.algorithm, base_model=base_model, run_id=run_id,
        iteration=iteration, parent_id=parent_id, metrics=result.metrics, checkpoint_id=checkpoint_id,
        config=_config_dict(config), store=store,
        tokenizer=tokenizer if tokenizer is not None else getattr(trainer, "tokenizer", None),
    )
    return result, info


def _config_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) and not isinstance(config, type) else {}
