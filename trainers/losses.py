"""The maths of policy-gradient training, as small pure functions (CleanRL style).

Names follow the papers: ``advantages`` (GRPO, Shao et al. 2024; leave-one-out as in RLOO /
LOOP, Chen et al. 2025), step-level advantages over identical anchor states (GiGPO, Feng et al.
2025), the clipped surrogate (PPO, Schulman et al. 2017) and the k3 KL estimator (Schulman 2020).
Every function works on tensors of any shape and does no I/O.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Literal

import torch

__all__ = [
    "AdvantageMode",
    "approx_kl",
    "clipped_pg_loss",
    "discounted_returns",
    "group_advantages",
    "kl_k3",
    "masked_mean",
    "masked_sum",
]

AdvantageMode = Literal["mean_std", "mean", "loo"]


def group_advantages(rewards: torch.Tensor, groups: Sequence[Hashable], *, mode: AdvantageMode = "mean_std",
                     eps: float = 1e-6) -> torch.Tensor:
    """Group-relative advantages: each reward against the others of its group.

    Args:
        rewards: ``[n]`` rewards.
        groups: ``n`` group keys (e.g. task ids); members of a group are compared with each other.
        mode: ``mean_std`` — ``(r - mean) / (std + eps)`` (GRPO); ``mean`` — ``r - mean`` (no std
            scaling, Dr. GRPO); ``loo`` — ``r - mean of the others`` (RLOO / LOOP).

    Returns:
        ``[n]`` advantages; 0 for a group of one and for a group whose rewards are all equal.
    """
    if rewards.ndim != 1 or rewards.numel() != len(groups):
        raise ValueError(f"group_advantages: need [n] rewards and n group keys, got {tuple(rewards.shape)} "
                         f"and {len(groups)} keys")
    index_of: dict[Hashable, int] = {}
    idx = torch.tensor([index_of.setdefault(g, len(index_of)) for g in groups], dtype=torch.long)
    rewards = rewards.to(torch.float64)
    count = torch.bincount(idx, minlength=len(index_of)).to(torch.float64)
    mean = torch.zeros(len(index_of), dtype=torch.float64).index_add_(0, idx, rewards) / count
    centered = rewards - mean[idx]
    n = count[idx]
    if mode == "mean":
        out = centered
    elif mode == "loo":
        out = torch.where(n > 1, centered * n / (n - 1).clamp(min=1), torch.zeros_like(centered))
    elif mode == "mean_std":
        var = torch.zeros(len(index_of), dtype=torch.float64).index_add_(0, idx, centered**2)
        std = (var / (count - 1).clamp(min=1)).sqrt()[idx]
        out = torch.where(std > 0, centered / (std + eps), torch.zeros_like(centered))
    else:
        raise ValueError(f"group_advantages: mode must be 'mean_std', 'mean' or 'loo', got {mode!r}")
    return out.to(torch.float32)


def discounted_returns(rewards: Sequence[float], gamma: float = 1.0) -> list[float]:
    """Reward-to-go of each step: ``G_t = r_t + gamma * G_{t+1}``."""
    out, running = [0.0] * len(rewards), 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        out[t] = running
    return out


def masked_sum(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of ``values`` where ``mask`` is true (NaNs outside the mask are ignored)."""
    zeroed = torch.where(mask.bool(), values, torch.zeros_like(values))
    return zeroed.sum() if dim is None else zeroed.sum(dim)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` is true; 0 where the mask is empty."""
    count = mask.sum() if dim is None else mask.sum(dim)
    return masked_sum(values, mask, dim) / count.clamp(min=1)


def clipped_pg_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, *,
                    clip_low: float = 0.2, clip_high: float = 0.2,
                    dual_clip: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token clipped surrogate loss (to minimise).

    ``max(-A * ratio, -A * clip(ratio, 1 - clip_low, 1 + clip_high))`` with ``ratio =
    exp(logprobs - old_logprobs)``. ``clip_high > clip_low`` is DAPO's clip-higher. ``dual_clip``
    (c > 1) bounds the loss of negative-advantage tokens at ``-c * A`` when the ratio explodes
    (behaviour logprobs from another engine can be far from the trainer's).

    Returns:
        ``(loss, clipped)``: the per-token loss and a bool tensor, true where clipping was active.
    """
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped)
    active = clipped > unclipped
    if dual_clip is not None:
        bound = -advantages * dual_clip
        capped = (advantages < 0) & (loss > bound)
        loss = torch.where(capped, bound, loss)
        active = active | capped
    return loss, active


def approx_kl(logprobs: torch.Tensor, old_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token estimate of KL(old || new) from samples of the old policy: ``(ratio - 1) - log ratio``."""
    log_ratio = logprobs - old_logprobs
    return torch.expm1(log_ratio) - log_ratio


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(policy || reference) on policy samples; >= 0, unbiased, low variance."""
    delta = ref_logprobs - logprobs
    return torch.expm1(delta) - delta
