"""Rejection-sampling fine-tuning (ReST-EM, AgentEvol): supervised training on successful episodes.

Successful trajectories become token-exact rows (``data.trajectory_rows``) whose labels are the
agent's completion tokens only; the prompt, the instructions and every observation are -100.
With ``corrections``, a trajectory that succeeded after failed attempts (self-debugging with test
feedback) is trained as the attempt that passed, both after the first prompt (a first-attempt
target) and in its real dialogue; the failed attempts are never labelled (``rft_rows``).
TRL's ``SFTTrainer`` takes such pre-tokenised rows as they are (an ``input_ids`` column plus a
``labels`` column), so it runs the optimisation: no text is re-tokenised on the way.
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import trl
from transformers.trainer_callback import PrinterCallback

from selfgym.errors import ConfigError
from selfgym.types import Trajectory

from .base import TrainResult
from .config import TrainConfig
from .data import TokenRow, correction_row, correction_turn, sft_labels, trajectory_rows
from .model import activation_checkpointing, check_vocabulary, prepare_policy, trl_arguments

__all__ = ["RFTConfig", "RFTTrainer", "rft_rows", "select_successes"]


@dataclass(frozen=True, kw_only=True)
class RFTConfig:
    """Rejection-sampling fine-tuning settings."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(learning_rate=1e-4),
                               metadata={"help": "optimisation settings"})
    min_reward: float | None = field(
        default=None, metadata={"help": "also require total_reward >= this (None: success alone decides)"})
    max_per_task: int | None = field(
        default=None, metadata={"help": "keep at most this many successes per task, so easy tasks do not dominate"})
    dedupe: bool = field(default=True, metadata={"help": "train once on successes with identical agent tokens"})
    merge_turns: bool = field(default=True, metadata={"help": "one row for turns whose prompts extend each other"})
    corrections: bool = field(default=False, metadata={
        "help": "a success after failed attempts trains its passing attempt after the first prompt too, and "
                "never labels the failed attempts (first-attempt successes are unchanged)"})

    def __post_init__(self) -> None:
        if self.max_per_task is not None and self.max_per_task < 1:
            raise ConfigError(f"RFTConfig.max_per_task must be >= 1 or None, got {self.max_per_task}")


def _agent_tokens(traj: Trajectory) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(turn.completion_ids) for turn in traj.turns)


def select_successes(trajectories: Sequence[Trajectory], config: RFTConfig) -> tuple[list[Trajectory], dict[str, float]]:
    """The successful, non-aborted trajectories RFT trains on, and counts of what was left out."""
    kept: list[Trajectory] = []
    per_task: dict[str, int] = defaultdict(int)
    seen: set[tuple[str, tuple[tuple[int, ...], ...]]] = set()
    duplicates = capped = 0
    for traj in trajectories:
        if traj.aborted or not traj.success:
            continue
        if config.min_reward is not None and traj.total_reward < config.min_reward:
            continue
        key = (traj.task_id, _agent_tokens(traj))
        if config.dedupe and key in seen:
            duplicates += 1
            continue
        if config.max_per_task is not None and per_task[traj.task_id] >= config.max_per_task:
            capped += 1
            continue
        seen.add(key)
        per_task[traj.task_id] += 1
        kept.append(traj)
    return kept, {"data/candidates": float(len(trajectories)), "data/selected": float(len(kept)),
                  "data/left_out_duplicates": float(duplicates), "data/left_out_task_cap": float(capped),
                  "data/tasks": float(len(per_task))}


def rft_rows(selected: Sequence[Trajectory], config: RFTConfig) -> tuple[list[TokenRow], dict[str, float]]:
    """The training rows of the selected successes, and counts of what they hold.

    Without ``corrections`` every agent turn is labelled. With it, a trajectory that succeeded at
    a later attempt (``data.correction_turn``) gives a correction row (first prompt, then the
    passing attempt) and its passing turn in the dialogue it was written in, with the turns
    before it as unlabelled context: imitating a failed attempt would teach the mistake.
    """
    max_length, merge = config.train.max_length, config.merge_turns
    rows: list[TokenRow] = []
    corrections = unlabelled = 0
    for traj in selected:
        k = correction_turn(traj) if config.corrections else None
        if k is None:
            rows.extend(trajectory_rows(traj, max_length=max_length, merge_turns=merge))
            continue
        first = correction_row(traj, max_length=max_length)
        rows.extend([first] if first is not None else [])
        rows.extend(trajectory_rows(traj, max_length=max_length, merge_turns=merge, label_turns={k}))
        corrections += 1
        unlabelled += sum(len(turn.completion_ids) for turn in traj.turns[:k])
    stats = {"data/rows": float(len(rows)), "data/agent_tokens": float(sum(r.n_agent_tokens for r in rows)),
             "data/cut_tokens": float(sum(r.cut_tokens for r in rows))}
    if config.corrections:
        stats |= {"data/corrections": float(corrections), "data/unlabelled_failed_tokens": float(unlabelled)}
    return rows, stats


class RFTTrainer:
    """Supervised fine-tuning on the agent tokens of successful trajectories, through TRL's SFTTrainer.

    Args:
        model: a Hugging Face causal LM (or a ``PeftModel`` to keep training its adapter).
        tokenizer: the model's tokenizer (TRL needs its pad token; the text is never re-tokenised).
        config: the settings.
    """

    algorithm = "rft"

    def __init__(self, model: Any, tokenizer: Any, config: RFTConfig | None = None) -> None:
        if tokenizer is None:
            raise ConfigError("RFTTrainer needs the model's tokenizer (TRL's SFTTrainer reads its pad token)")
        self.config = config or RFTConfig()
        self.tokenizer = tokenizer
        self.model = prepare_policy(model, self.config.train.lora)

    def _sft_args(self, output_dir: str) -> trl.SFTConfig:
        return trl.SFTConfig(**trl_arguments(self.config.train, output_dir), max_length=None)

    def train(self, trajectories: list[Trajectory]) -> TrainResult:
        """Fine-tune on the successes among ``trajectories`` (``epochs`` passes)."""
        start = time.perf_counter()
        selected, stats = select_successes(trajectories, self.config)
        rows, counts = rft_rows(selected, self.config)
        stats.update(counts)
        result = TrainResult(metrics=stats)
        if not rows:
            return result
        check_vocabulary(self.model, (r.input_ids for r in rows))
        dataset = datasets.Dataset.from_dict({"input_ids": [r.input_ids for r in rows],
                                              "labels": [sft_labels(r) for r in rows]})
        with tempfile.TemporaryDirectory(prefix="selfgym-rft-") as scratch, \
                activation_checkpointing(self.model, self.config.train.activation_checkpointing):
            sft = trl.SFTTrainer(model=self.model, args=self._sft_args(scratch), train_dataset=dataset,
                                 processing_class=self.tokenizer)
            sft.remove_callback(PrinterCallback)  # metrics come back in the TrainResult instead
            sft.train()
        result.losses = [float(h["loss"]) for h in sft.state.log_history if "loss" in h]
        result.steps = int(sft.state.global_step)
        seconds = time.perf_counter() - start
        tokens = sum(len(r) for r in rows) * self.config.train.epochs
        result.metrics.update({"losses/loss": result.last_loss, "losses/first_loss": result.first_loss,
                               "perf/seconds": seconds, "perf/tokens_per_s": tokens / seconds,
                               "perf/steps": float(result.steps)})
        return result
