"""Multi-turn GRPO on groups of attempts per task, from the store's token-exact trajectories.

Why not TRL's ``GRPOTrainer``: in TRL 1.16 it is an *online* trainer — it draws prompts from a
dataset and generates (itself, through ``rollout_func`` or through ``environment_factory`` tools)
inside its own loop, then scores each completion with one scalar reward. Our rollouts come from
selfgym's loop (agents with memory, any policy server, many processes) and sit in the store
before training starts. Its multi-turn path (``rollout_func`` returning ``env_mask``) flattens an
episode into one prompt and one completion, which is exact only when every turn's prompt extends
the previous one verbatim; our agents rebuild prompts (history budget, retrieved skills), and
turn-level rewards and step grouping (GiGPO) have no place in its advantage computation. So the
loop is a compact one on torch + peft + accelerate, using TRL's fused LM head for log-probs.

The loss, per optimizer step over the agent tokens ``T`` of its rows::

    A(i, t)  = A_episode(i) [+ w * A_step(i, t)]            group-relative, per turn
    loss     = sum_T max(-A r, -A clip(r, 1 - e_low, 1 + e_high)) / |T|  [+ kl_coef * k3 KL]
    r        = exp(logp - logp_behaviour)                   stored, or recomputed before the update
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from selfgym.errors import ConfigError
from selfgym.types import Trajectory

from .base import TrainResult
from .config import TrainConfig
from .data import TokenRow, collate, minibatches, trajectory_rows
from .losses import (
    AdvantageMode,
    approx_kl,
    clipped_pg_loss,
    discounted_returns,
    group_advantages,
    kl_k3,
    masked_sum,
)
from .model import (
    activation_checkpointing,
    check_vocabulary,
    make_accelerator,
    pad_token_id,
    prepare_policy,
    reference_logprobs,
    token_logprobs,
)

__all__ = ["GRPOConfig", "GRPOTrainer", "turn_advantages"]


@dataclass(frozen=True, kw_only=True)
class GRPOConfig:
    """Multi-turn GRPO settings."""

    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "optimisation settings"})
    advantage: AdvantageMode = field(
        default="mean_std", metadata={"help": "mean_std (GRPO), mean (Dr. GRPO) or loo (leave-one-out, LOOP)"})
    reward: Literal["total_reward", "success"] = field(
        default="total_reward", metadata={"help": "the episode score compared within a task's group"})
    turn_credit: bool = field(
        default=False, metadata={"help": "add GiGPO step advantages: turns with the same observation across a "
                                         "group compared by their reward-to-go"})
    step_weight: float = field(default=1.0, metadata={"help": "weight of the step advantage (turn_credit)"})
    gamma: float = field(default=1.0, metadata={"help": "discount of per-turn rewards in the reward-to-go"})
    clip_low: float = field(default=0.2, metadata={"help": "ratio clip below 1"})
    clip_high: float = field(default=0.28, metadata={"help": "ratio clip above 1 (DAPO clip-higher)"})
    dual_clip: float | None = field(
        default=None, metadata={"help": "bound the loss of negative-advantage tokens at -c*A (c > 1)"})
    kl_coef: float = field(default=0.0, metadata={"help": "weight of the k3 KL to the reference policy"})
    temperature: float = field(
        default=1.0, metadata={"help": "sampling temperature of the rollouts: log-probs are taken of the same "
                                       "tempered distribution, so stored behaviour logprobs compare like with like "
                                       "(selfgym train sets it to agent.sampling.temperature)"})
    min_group_size: int = field(default=2, metadata={"help": "tasks with fewer attempts are left out"})
    skip_zero_advantage: bool = field(
        default=True, metadata={"help": "leave out rows whose advantages are all 0 (no training signal)"})
    merge_turns: bool = field(default=True, metadata={"help": "one row for turns whose prompts extend each other"})

    def __post_init__(self) -> None:
        if self.advantage not in ("mean_std", "mean", "loo"):
            raise ConfigError(f"GRPOConfig.advantage must be mean_std, mean or loo, got {self.advantage!r}")
        if not (0 <= self.clip_low < 1 and self.clip_high >= 0):
            raise ConfigError(f"GRPOConfig needs 0 <= clip_low < 1 and clip_high >= 0, got {self.clip_low}, "
                              f"{self.clip_high}")
        if self.dual_clip is not None and self.dual_clip <= 1:
            raise ConfigError(f"GRPOConfig.dual_clip must be > 1 or None, got {self.dual_clip}")
        if self.kl_coef < 0 or not 0 < self.gamma <= 1 or self.min_group_size < 2:
            raise ConfigError("GRPOConfig needs kl_coef >= 0, 0 < gamma <= 1 and min_group_size >= 2")
        if self.temperature <= 0:
            raise ConfigError(f"GRPOConfig.temperature must be > 0 (the temperature rollouts were sampled at; "
                              f"greedy rollouts carry no policy gradient), got {self.temperature}")


def _episode_score(traj: Trajectory, reward: str) -> float:
    return float(traj.success) if reward == "success" else float(traj.total_reward)


def turn_advantages(trajectories: Sequence[Trajectory], config: GRPOConfig) -> list[list[float]]:
    """One advantage per turn of each trajectory, relative to the other attempts at the same task.

    The episode advantage compares episode scores within a task's group. With ``turn_credit``,
    GiGPO's step advantage is added: turns whose observation is identical across the group (the
    same anchor state, or ``turn.info["state_key"]`` when the env gives one) are compared by
    their discounted reward-to-go.
    """
    scores = torch.tensor([_episode_score(t, config.reward) for t in trajectories], dtype=torch.float32)
    episode = group_advantages(scores, [t.task_id for t in trajectories], mode=config.advantage)
    out = [[float(episode[i])] * len(t.turns) for i, t in enumerate(trajectories)]
    if not config.turn_credit:
        return out
    returns, anchors, where = [], [], []
    for i, traj in enumerate(trajectories):
        for k, g in enumerate(discounted_returns([turn.reward for turn in traj.turns], config.gamma)):
            turn = traj.turns[k]
            returns.append(g)
            anchors.append((traj.task_id, str(turn.info.get("state_key", turn.observation))))
            where.append((i, k))
    step = group_advantages(torch.tensor(returns), anchors, mode=config.advantage)
    for (i, k), a in zip(where, step.tolist(), strict=True):
        out[i][k] += config.step_weight * a
    return out


class GRPOTrainer:
    """Multi-turn GRPO with LoRA (or full fine-tuning), on the CPU or under accelerate on GPUs.

    Args:
        model: a Hugging Face causal LM (or a ``PeftModel`` to keep training its adapter).
        config: the settings.
        reference: a frozen reference model for the KL term of a full fine-tune (LoRA uses the
            base model with the adapter switched off).
    """

    algorithm = "grpo"

    def __init__(self, model: Any, config: GRPOConfig | None = None, *, reference: Any | None = None) -> None:
        self.config = config or GRPOConfig()
        train = self.config.train
        torch.manual_seed(train.seed)
        self.model = prepare_policy(model, train.lora, temperature=self.config.temperature)
        self.reference = (None if reference is None else
                          prepare_policy(reference, None, temperature=self.config.temperature).requires_grad_(False))
        self.accelerator = make_accelerator(train.precision)
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=train.learning_rate, weight_decay=train.weight_decay)
        self._wrapped, self.optimizer = self.accelerator.prepare(self.model, optimizer)
        if self.reference is not None:
            self.reference.to(self.accelerator.device)
        self.pad_id = pad_token_id(self.model)
        self._rng = np.random.default_rng(train.seed)

    # ------------------------------------------------------------------ data
    def _rows(self, trajectories: Sequence[Trajectory]) -> tuple[list[TokenRow], list[list[float]], dict[str, float]]:
        scored = [t for t in trajectories if not t.aborted]
        sizes: dict[str, int] = defaultdict(int)
        for traj in scored:
            sizes[traj.task_id] += 1
        grouped = [t for t in scored if sizes[t.task_id] >= self.config.min_group_size]
        advantages = turn_advantages(grouped, self.config) if grouped else []
        rows, row_adv, cut = [], [], 0
        for traj, adv in zip(grouped, advantages, strict=True):
            for row in trajectory_rows(traj, max_length=self.config.train.max_length,
                                       merge_turns=self.config.merge_turns):
                token_adv = [adv[t] if t >= 0 else 0.0 for t in row.turn_index]
                cut += row.cut_tokens
                if self.config.skip_zero_advantage and not any(token_adv):
                    continue
                rows.append(row)
                row_adv.append(token_adv)
        stats = {"data/trajectories": float(len(grouped)), "data/left_out_aborted": float(len(trajectories) - len(scored)),
                 "data/left_out_small_groups": float(len(scored) - len(grouped)),
                 "data/groups": float(len({t.task_id for t in grouped})),
                 "data/rows": float(len(rows)), "data/agent_tokens": float(sum(r.n_agent_tokens for r in rows)),
                 "data/cut_tokens": float(cut)}
        return rows, row_adv, stats

    def _fill_behaviour_logprobs(self, rows: list[TokenRow]) -> int:
        """Recompute, with the current policy, the behaviour logprobs the backend did not give."""
        missing = [i for i, r in enumerate(rows)
                   if any(a and math.isnan(lp) for a, lp in zip(r.agent_mask, r.behaviour_logprobs, strict=True))]
        step = self.config.train.micro_batch_size
        for start in range(0, len(missing), step):
            chunk = missing[start:start + step]
            batch = collate([rows[i] for i in chunk], pad_id=self.pad_id).to(self.accelerator.device)
            with torch.no_grad(), self.accelerator.autocast():
                logprobs = token_logprobs(self._wrapped, batch).float().cpu()
            for j, i in enumerate(chunk):
                row = rows[i]
                for t in range(1, len(row)):
                    if row.agent_mask[t] and math.isnan(row.behaviour_logprobs[t]):
                        row.behaviour_logprobs[t] = float(logprobs[j, t - 1])
        return len(missing)

    # ------------------------------------------------------------------ loss
    def _micro_step(self, batch: Any, n_tokens: int, sums: dict[str, float]) -> float:
        cfg = self.config
        mask = batch.agent_mask[:, 1:]
        old = batch.behaviour_logprobs[:, 1:].nan_to_num(0.0)
        adv = batch.token_advantages[:, 1:]
        with self.accelerator.autocast():
            logprobs = token_logprobs(self._wrapped, batch).float()
        pg, clipped = clipped_pg_loss(logprobs, old, adv, clip_low=cfg.clip_low, clip_high=cfg.clip_high,
                                      dual_clip=cfg.dual_clip)
        per_token = pg
        if cfg.kl_coef > 0:
            with self.accelerator.autocast():
                ref = reference_logprobs(self.model, batch, self.reference).float()
            kl = kl_k3(logprobs, ref)
            per_token = per_token + cfg.kl_coef * kl
            sums["losses/kl"] += float(masked_sum(kl.detach(), mask))
        loss = masked_sum(per_token, mask) / n_tokens
        self.accelerator.backward(loss)
        sums["losses/policy_loss"] += float(masked_sum(pg.detach(), mask))
        sums["charts/clip_frac"] += float(masked_sum(clipped.float(), mask))
        sums["charts/approx_kl"] += float(masked_sum(approx_kl(logprobs.detach(), old), mask))
        return float(loss.detach())

    # ------------------------------------------------------------------ loop
    def _optimizer_step(self, items: list[tuple[TokenRow, list[float]]], sums: dict[str, float]) -> tuple[float, int]:
        """Accumulate the micro-batches of one optimizer batch, then step. Returns (loss, tokens)."""
        micro = self.config.train.micro_batch_size
        n_tokens = max(sum(row.n_agent_tokens for row, _ in items), 1)
        loss, tokens = 0.0, 0
        for start in range(0, len(items), micro):
            chunk = items[start:start + micro]
            padded = collate([r for r, _ in chunk], pad_id=self.pad_id, advantages=[a for _, a in chunk])
            last = start + micro >= len(items)
            with contextlib.nullcontext() if last else self.accelerator.no_sync(self._wrapped):
                loss += self._micro_step(padded.to(self.accelerator.device), n_tokens, sums)
            tokens += sum(len(r) for r, _ in chunk)
            sums["charts/advantage_abs"] += float(masked_sum(padded.token_advantages.abs(), padded.agent_mask))
        if self.config.train.max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.config.train.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss, tokens

    def train(self, trajectories: list[Trajectory]) -> TrainResult:
        """One GRPO update on these trajectories (``epochs`` passes over them)."""
        start = time.perf_counter()
        rows, row_adv, stats = self._rows(trajectories)
        result = TrainResult(metrics=dict(stats))
        if not rows:
            return result
        check_vocabulary(self.model, (r.input_ids for r in rows))
        self._wrapped.train()
        result.metrics["data/recomputed_behaviour_rows"] = float(self._fill_behaviour_logprobs(rows))
        # each process takes its share; the last ones repeat a row or two so every process steps alike
        with self.accelerator.split_between_processes(list(zip(rows, row_adv, strict=True)),
                                                      apply_padding=True) as shard:
            items = list(shard)
        sums: defaultdict[str, float] = defaultdict(float)
        train, tokens_seen = self.config.train, 0
        with activation_checkpointing(self.model, train.activation_checkpointing):
            for _ in range(train.epochs):
                for batch in minibatches(len(items), batch_size=train.batch_size, micro_batch_size=train.batch_size,
                                         rng=self._rng, lengths=[len(r) for r, _ in items]):
                    loss, tokens = self._optimizer_step([items[i] for i in batch[0]], sums)
                    result.losses.append(loss)
                    result.steps += 1
                    tokens_seen += tokens
        seen_agent = stats["data/agent_tokens"] * train.epochs
        result.metrics.update({k: v / max(seen_agent, 1) for k, v in sums.items()})
        seconds = time.perf_counter() - start
        result.metrics.update({"losses/loss": result.last_loss, "perf/seconds": seconds,
                               "perf/tokens_per_s": tokens_seen / seconds, "perf/steps": float(result.steps)})
        return result
