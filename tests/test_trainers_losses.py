"""The policy-gradient maths, checked against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from selfgym.trainers.grpo import GRPOConfig, turn_advantages
from selfgym.trainers.losses import (
    approx_kl,
    clipped_pg_loss,
    discounted_returns,
    group_advantages,
    kl_k3,
    masked_mean,
    masked_sum,
)
from selfgym.types import Trajectory, Turn


def test_group_advantages_mean_std_matches_hand_computation():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 5.0, 5.0])
    adv = group_advantages(rewards, ["a", "a", "a", "a", "b", "b"], mode="mean_std", eps=0.0)
    std = math.sqrt(((0.5**2) * 4) / 3)  # unbiased std of [1, 0, 0, 1]
    assert adv[:4].tolist() == pytest.approx([0.5 / std, -0.5 / std, -0.5 / std, 0.5 / std])
    assert adv[4:].tolist() == [0.0, 0.0]  # equal rewards: no signal


def test_group_advantages_leave_one_out_and_plain_mean():
    rewards = torch.tensor([3.0, 1.0, 2.0])
    loo = group_advantages(rewards, ["t"] * 3, mode="loo")
    assert loo.tolist() == pytest.approx([3 - 1.5, 1 - 2.5, 2 - 2.0])
    assert group_advantages(rewards, ["t"] * 3, mode="mean").tolist() == pytest.approx([1.0, -1.0, 0.0])


def test_group_of_one_has_no_advantage_and_groups_do_not_mix():
    adv = group_advantages(torch.tensor([7.0, 1.0, 0.0]), ["solo", "g", "g"], mode="loo")
    assert adv[0] == 0 and adv[1] > 0 > adv[2]
    with pytest.raises(ValueError, match="mode"):
        group_advantages(torch.tensor([1.0]), ["a"], mode="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="group keys"):
        group_advantages(torch.tensor([1.0, 2.0]), ["a"])


def test_discounted_returns():
    assert discounted_returns([0.0, 0.0, 1.0], gamma=0.5) == [0.25, 0.5, 1.0]
    assert discounted_returns([1.0, 2.0]) == [3.0, 2.0]
    assert discounted_returns([]) == []


def test_masked_mean_ignores_masked_nans():
    values = torch.tensor([[1.0, float("nan"), 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[True, False, True], [False, False, False]])
    assert masked_mean(values, mask).item() == 2.0
    assert masked_sum(values, mask).item() == 4.0
    assert masked_mean(values, mask, dim=1).tolist() == [2.0, 0.0]


def test_clipped_loss_equals_minus_advantage_at_ratio_one_with_policy_gradient():
    logprobs = torch.tensor([-1.0, -2.0], requires_grad=True)
    adv = torch.tensor([2.0, -1.0])
    loss, clipped = clipped_pg_loss(logprobs, logprobs.detach(), adv)
    assert loss.tolist() == [-2.0, 1.0] and not clipped.any()
    loss.sum().backward()
    assert logprobs.grad.tolist() == [-2.0, 1.0]  # d/dlogp of -A * ratio at ratio 1


def test_clipping_stops_the_gradient_outside_the_trust_region():
    old = torch.zeros(4)
    logprobs = torch.log(torch.tensor([1.5, 1.5, 0.5, 0.5])).requires_grad_(True)
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    loss, clipped = clipped_pg_loss(logprobs, old, adv, clip_low=0.2, clip_high=0.28)
    # ratio 1.5 with A>0 and ratio 0.5 with A<0 are clipped; the other two are pessimistic unclipped
    assert clipped.tolist() == [True, False, False, True]
    assert loss.tolist() == pytest.approx([-1.28, 1.5, -0.5, 0.8])
    loss.sum().backward()
    assert logprobs.grad[0] == 0 and logprobs.grad[3] == 0
    assert logprobs.grad[1] != 0 and logprobs.grad[2] != 0


def test_dual_clip_bounds_negative_advantage_loss():
    logprobs, old, adv = torch.log(torch.tensor([10.0])), torch.zeros(1), torch.tensor([-1.0])
    unbounded, _ = clipped_pg_loss(logprobs, old, adv)
    bounded, active = clipped_pg_loss(logprobs, old, adv, dual_clip=3.0)
    assert unbounded.item() == pytest.approx(10.0) and bounded.item() == pytest.approx(3.0) and active.all()


def test_kl_estimators_are_zero_at_equality_and_unbiased():
    same = torch.tensor([-0.3, -2.0])
    assert kl_k3(same, same).abs().max() == 0 and approx_kl(same, same).abs().max() == 0
    # k3 on samples of p estimates KL(p || q)
    p = torch.tensor([0.7, 0.2, 0.1])
    q = torch.tensor([0.4, 0.4, 0.2])
    samples = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    estimate = kl_k3(p.log()[samples], q.log()[samples]).mean().item()
    exact = (p * (p / q).log()).sum().item()
    assert estimate == pytest.approx(exact, rel=0.03)
    assert (kl_k3(p.log()[samples], q.log()[samples]) >= 0).all()


def _traj(task: str, rewards: list[float], observations: list[str]) -> Trajectory:
    turns = [Turn(observation=o, action="a", reward=r, prompt_ids=[1], completion_ids=[2])
             for o, r in zip(observations, rewards, strict=True)]
    return Trajectory(task_id=task, env_id="e", turns=turns, total_reward=sum(rewards), success=sum(rewards) > 0)


def test_episode_advantage_is_shared_by_every_turn():
    trajs = [_traj("t", [0.0, 1.0], ["s0", "s1"]), _traj("t", [0.0, 0.0], ["s0", "s2"])]
    adv = turn_advantages(trajs, GRPOConfig(advantage="mean"))
    assert adv == [[0.5, 0.5], [-0.5, -0.5]]


def test_gigpo_step_credit_compares_turns_from_the_same_state():
    # both start in s0; from s0 the first went to s1 and won, the second to s2 and lost.
    # The third episode (other task) never mixes with them.
    trajs = [_traj("t", [0.0, 1.0], ["s0", "s1"]), _traj("t", [0.0, 0.0], ["s0", "s2"]),
             _traj("u", [1.0], ["s0"])]
    adv = turn_advantages(trajs, GRPOConfig(advantage="mean", turn_credit=True, step_weight=1.0, gamma=1.0))
    # episode: +-0.5; step at s0: returns 1 vs 0 -> +-0.5; s1 and s2 are alone -> 0
    assert adv[0] == [1.0, 0.5] and adv[1] == [-1.0, -0.5] and adv[2] == [0.0]
