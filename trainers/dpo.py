"""DPO on pairs of trajectories at the same task: a success preferred to a failure.

Each trajectory of a pair becomes one token-exact row (its turns merged, ``data.trajectory_rows``);
the pair shares the prompt up to where the rows differ. TRL's ``DPOTrainer`` runs the loss, the
reference model (LoRA: the adapter as it was when the call started) and the optimisation, through
a thin adapter: the rows go in pre-tokenised, and the collator scores only the agent's tokens,
so the observations between turns never count as the policy's choices.

A trajectory whose prompts were rebuilt between turns (it splits into several rows) has no single
sequence probability to compare; its pairs are left out and counted in ``data/left_out_split``.
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import datasets
import torch
import trl
from peft import PeftModel
from transformers.trainer_callback import PrinterCallback
from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.utils import pad

from selfgym.errors import ConfigError
from selfgym.types import Trajectory

from .base import TrainResult
from .config import TrainConfig
from .data import TokenRow, trajectory_rows
from .model import activation_checkpointing, check_vocabulary, prepare_policy, trl_arguments

__all__ = ["DPOConfig", "DPOTrainer", "pair_example", "preference_pairs"]


@dataclass(frozen=True, kw_only=True)
class DPOConfig:
    """DPO settings."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(learning_rate=5e-5),
                               metadata={"help": "optimisation settings (batch_size counts pairs)"})
    beta: float = field(default=0.1, metadata={"help": "strength of the implicit KL to the reference"})
    loss_type: str = field(default="sigmoid", metadata={"help": "a TRL DPO loss: sigmoid, ipo, hinge, robust, ..."})
    pair_by: Literal["success", "reward"] = field(
        default="success", metadata={"help": "success: successes over failures; reward: higher total_reward wins"})
    min_reward_gap: float = field(default=0.0, metadata={"help": "pair_by=reward: smallest reward difference"})
    max_pairs_per_task: int = field(default=4, metadata={"help": "most pairs drawn from one task"})

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise ConfigError(f"DPOConfig.beta must be > 0, got {self.beta}")
        if self.pair_by not in ("success", "reward"):
            raise ConfigError(f"DPOConfig.pair_by must be 'success' or 'reward', got {self.pair_by!r}")
        if self.max_pairs_per_task < 1:
            raise ConfigError(f"DPOConfig.max_pairs_per_task must be >= 1, got {self.max_pairs_per_task}")


def preference_pairs(trajectories: Sequence[Trajectory], config: DPOConfig) -> list[tuple[Trajectory, Trajectory]]:
    """``(chosen, rejected)`` pairs at the same task, tasks in the order they first appear.

    Up to ``max_pairs_per_task`` per task, chosen so that every trajectory is used about equally
    often (each next pair is the one whose two sides have been used least so far).
    """
    by_task: dict[str, list[Trajectory]] = defaultdict(list)
    for traj in trajectories:
        if not traj.aborted:
            by_task[traj.task_id].append(traj)
    pairs = []
    for attempts in by_task.values():
        if config.pair_by == "success":
            candidates = [(w, lo) for w in attempts if w.success for lo in attempts if not lo.success]
        else:
            candidates = [(w, lo) for w in attempts for lo in attempts
                          if w.total_reward - lo.total_reward > max(config.min_reward_gap, 0.0)]
        uses: dict[str, int] = defaultdict(int)
        for _ in range(min(config.max_pairs_per_task, len(candidates))):
            best = min(candidates, key=lambda p: uses[p[0].id] + uses[p[1].id])
            candidates.remove(best)
            uses[best[0].id] += 1
            uses[best[1].id] += 1
            pairs.append(best)
    return pairs


def _first_agent(row: TokenRow) -> int:
    return row.agent_mask.index(True)


def pair_example(chosen: TokenRow, rejected: TokenRow) -> dict[str, list[int]]:
    """One DPO example: the shared prompt, each side's remaining tokens and its agent mask."""
    limit = min(_first_agent(chosen), _first_agent(rejected))
    shared = 0
    while shared < limit and chosen.input_ids[shared] == rejected.input_ids[shared]:
        shared += 1
    return {"prompt_ids": chosen.input_ids[:shared],
            "chosen_ids": chosen.input_ids[shared:], "chosen_mask": [int(m) for m in chosen.agent_mask[shared:]],
            "rejected_ids": rejected.input_ids[shared:],
            "rejected_mask": [int(m) for m in rejected.agent_mask[shared:]]}


class AgentTokenPreferenceCollator(DataCollatorForPreference):
    """TRL's preference collator, with the loss mask on the agent's tokens instead of the whole completion."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        output = super().torch_call(examples)
        masks = [[0] * len(e["prompt_ids"]) + list(e[side]) for side in ("chosen_mask", "rejected_mask")
                 for e in examples]
        if self.max_length is not None:
            masks = [m[: self.max_length] for m in masks]
        output["completion_mask"] = pad([torch.tensor(m, dtype=torch.long) for m in masks], padding_value=0,
                                        padding_side="right", pad_to_multiple_of=self.pad_to_multiple_of)
        return output


class _TokenDPO(trl.DPOTrainer):
    """TRL's DPOTrainer fed pre-tokenised, agent-masked rows (no text, no chat template)."""

    def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
        return dataset

    def _set_signature_columns_if_needed(self) -> None:
        self._signature_columns: Any = ["prompt_ids", "chosen_ids", "rejected_ids", "chosen_mask", "rejected_mask"]


class DPOTrainer:
    """DPO on success/failure pairs of the same task, through TRL's DPOTrainer.

    Args:
        model: a Hugging Face causal LM (or a ``PeftModel`` to keep training its adapter).
        tokenizer: the model's tokenizer (TRL reads its pad token; the text is never re-tokenised).
        config: the settings.
    """

    algorithm = "dpo"

    def __init__(self, model: Any, tokenizer: Any, config: DPOConfig | None = None) -> None:
        if tokenizer is None:
            raise ConfigError("DPOTrainer needs the model's tokenizer (TRL's DPOTrainer reads its pad token)")
        self.config = config or DPOConfig()
        self.tokenizer = tokenizer
        self.model = prepare_policy(model, self.config.train.lora)

    def examples(self, trajectories: Sequence[Trajectory]) -> tuple[list[dict[str, list[int]]], dict[str, float]]:
        """The DPO examples built from ``trajectories``, and counts of what was left out."""
        pairs = preference_pairs(trajectories, self.config)
        examples, split = [], 0
        for chosen, rejected in pairs:
            rows = [trajectory_rows(t, max_length=self.config.train.max_length) for t in (chosen, rejected)]
            if any(len(r) != 1 for r in rows):
                split += 1
                continue
            examples.append(pair_example(rows[0][0], rows[1][0]))
        return examples, {"data/candidates": float(len(trajectories)), "data/pairs": float(len(examples)),
                          "data/left_out_split": float(split)}

    def _dpo_args(self, output_dir: str) -> trl.DPOConfig:
        return trl.DPOConfig(**trl_arguments(self.config.train, output_dir), beta=self.config.beta,
                             loss_type=[self.config.loss_type], max_length=self.config.train.max_length)

    def train(self, trajectories: list[Trajectory]) -> TrainResult:
        """Run DPO on the preference pairs found in ``trajectories`` (``epochs`` passes)."""
        start = time.perf_counter()
        examples, stats = self.examples(trajectories)
        result = TrainResult(metrics=stats)
        if not examples:
            return result
        check_vocabulary(self.model, (e[k] for e in examples for k in ("prompt_ids", "chosen_ids", "rejected_ids")))
        dataset = datasets.Dataset.from_list(examples)
        collator = AgentTokenPreferenceCollator(pad_token_id=self.tokenizer.pad_token_id,
                                                max_length=self.config.train.max_length)
        is_lora = isinstance(self.model, PeftModel)
        reference = None if is_lora else copy.deepcopy(self.model).requires_grad_(False)
        with tempfile.TemporaryDirectory(prefix="selfgym-dpo-") as scratch, \
                activation_checkpointing(self.model, self.config.train.activation_checkpointing):
            args = self._dpo_args(scratch)
            dpo = _TokenDPO(model=self.model, ref_model=reference, args=args, train_dataset=dataset,
                            processing_class=self.tokenizer, data_collator=collator)
            dpo.remove_callback(PrinterCallback)  # metrics come back in the TrainResult instead
            try:
                dpo.train()
            finally:
                if is_lora and "ref" in self.model.peft_config:  # TRL's frozen copy of the adapter
                    self.model.delete_adapter("ref")
                    self.model.set_adapter("default")
        history = [h for h in dpo.state.log_history if "loss" in h]
        result.losses = [float(h["loss"]) for h in history]
        result.steps = int(dpo.state.global_step)
        for key in ("rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected"):
            if history and key in history[-1]:
                result.metrics[f"charts/{key.split('/')[1]}"] = float(history[-1][key])
        seconds = time.perf_counter() - start
        result.metrics.update({"losses/loss": result.last_loss, "losses/first_loss": result.first_loss,
                               "perf/seconds": seconds, "perf/steps": float(result.steps)})
        return result
