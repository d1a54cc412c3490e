"""DPO through TRL's DPOTrainer on token-exact success/failure pairs."""

from __future__ import annotations

import pytest
import torch

from selfgym.errors import ConfigError
from selfgym.trainers import DPOConfig, DPOTrainer, LoraSettings, TrainConfig
from selfgym.trainers.data import collate, trajectory_rows
from selfgym.trainers.dpo import AgentTokenPreferenceCollator, pair_example, preference_pairs
from selfgym.trainers.model import token_logprobs
from selfgym.trainers.tiny import single_thread, tiny_causal_lm, tiny_tokenizer
from selfgym.types import Trajectory, Turn


@pytest.fixture(autouse=True, scope="module")
def _one_cpu_thread():
    with single_thread():
        yield


def fast(**overrides) -> TrainConfig:
    base = {"learning_rate": 2e-2, "epochs": 4, "batch_size": 8, "micro_batch_size": 4,
            "lora": LoraSettings(r=8, alpha=16)}
    return TrainConfig(**{**base, **overrides})


def two_turns(task: str, first: list[int], second: list[int], ok: bool, *, rebuild: bool = False) -> Trajectory:
    """A two-turn episode; observation tokens are 50-59, agent tokens what ``first``/``second`` say."""
    prompt = [2, 50, 51, int(task[-1]) + 3]
    second_prompt = [2, 55] if rebuild else prompt + first + [52, 53]
    return Trajectory(task_id=task, env_id="e", success=ok, total_reward=float(ok), turns=[
        Turn(observation="o0", action="a0", prompt_ids=prompt, completion_ids=first),
        Turn(observation="o1", action="a1", prompt_ids=second_prompt, completion_ids=second, reward=float(ok)),
    ])


def agent_logprob(model, traj: Trajectory) -> float:
    batch = collate(trajectory_rows(traj), pad_id=0)
    with torch.no_grad():
        return float(token_logprobs(model, batch)[batch.agent_mask[:, 1:]].sum())


def test_pairs_match_success_with_failure_on_the_same_task_and_share_the_load():
    a = [two_turns("t1", [40, 1], [41, 1], ok) for ok in (True, True, False, False, False)]
    b = [two_turns("t2", [40, 1], [41, 1], True)]  # no failure: no pair
    pairs = preference_pairs([*a, *b], DPOConfig(max_pairs_per_task=4))
    assert len(pairs) == 4 and all(c.success and not r.success and c.task_id == r.task_id for c, r in pairs)
    uses = [sum(t in p for p in pairs) for t in a]
    assert max(uses[:2]) == 2 and min(uses[2:]) >= 1  # spread over every trajectory
    ranked = [two_turns("t3", [40, 1], [41, 1], False) for _ in range(3)]
    for traj, reward in zip(ranked, (0.2, 0.5, 0.9), strict=True):
        traj.total_reward = reward
    by_reward = preference_pairs(ranked, DPOConfig(pair_by="reward", min_reward_gap=0.35))
    assert [(c.total_reward, r.total_reward) for c, r in by_reward] == [(0.9, 0.2), (0.9, 0.5)]


def test_collator_scores_exactly_the_agent_tokens_of_both_sides():
    chosen = two_turns("t1", [40, 41, 1], [42, 1], True)
    rejected = two_turns("t1", [44, 1], [45, 46, 1], False)
    example = pair_example(trajectory_rows(chosen)[0], trajectory_rows(rejected)[0])
    assert example["prompt_ids"] == chosen.turns[0].prompt_ids
    batch = AgentTokenPreferenceCollator(pad_token_id=0)([example])
    for row, traj in zip(range(2), (chosen, rejected), strict=True):
        ids, mask = batch["input_ids"][row], batch["completion_mask"][row]
        length = int(batch["attention_mask"][row].sum())
        full = traj.turns[1].prompt_ids + traj.turns[1].completion_ids
        assert ids[:length].tolist() == full
        agent = set(traj.turns[0].completion_ids + traj.turns[1].completion_ids) - {1}
        for token, bit in zip(ids[:length].tolist(), mask[:length].tolist(), strict=True):
            if token in agent:
                assert bit == 1
            elif token in (50, 51, 52, 53, 2, 4):  # prompt and observation tokens
                assert bit == 0
        assert mask.sum() == len(traj.turns[0].completion_ids) + len(traj.turns[1].completion_ids)
        assert mask[length:].sum() == 0


def test_dpo_widens_the_margin_between_success_and_failure():
    torch.manual_seed(0)
    trajectories = []
    for i in range(6):
        trajectories += [two_turns(f"t{i}", [40 + i % 3, 1], [47, 1], True),
                         two_turns(f"t{i}", [20 + i % 3, 1], [27, 1], False)]
    trainer = DPOTrainer(tiny_causal_lm(seed=0), tiny_tokenizer(), DPOConfig(beta=0.5, train=fast()))
    pairs = preference_pairs(trajectories, trainer.config)

    def margin() -> float:
        return sum(agent_logprob(trainer.model, c) - agent_logprob(trainer.model, r) for c, r in pairs) / len(pairs)

    before = margin()
    result = trainer.train(trajectories)
    after = margin()
    assert result.metrics["data/pairs"] == 6 and result.steps == 4
    assert result.losses[0] == pytest.approx(0.6931, abs=1e-3)  # log 2: policy == reference at the start
    assert result.losses[-1] < 0.5 and after > before + 1.0, (before, after)
    assert result.metrics["charts/accuracies"] == 1.0
    # TRL's frozen copy of the adapter is gone; a second call trains against the new policy
    assert set(trainer.model.peft_config) == {"default"}
    again = trainer.train(trajectories)
    assert again.losses[0] == pytest.approx(0.6931, abs=1e-3) and margin() > after


def test_split_trajectories_are_left_out_and_counted():
    trajectories = [two_turns("t1", [40, 1], [41, 1], True, rebuild=True), two_turns("t1", [20, 1], [21, 1], False)]
    trainer = DPOTrainer(tiny_causal_lm(), tiny_tokenizer(), DPOConfig(train=fast()))
    result = trainer.train(trajectories)
    assert result.steps == 0 and result.metrics["data/left_out_split"] == 1


def test_full_fine_tune_dpo_uses_a_frozen_copy_as_reference():
    trajectories = [two_turns("t1", [40, 1], [41, 1], True), two_turns("t1", [20, 1], [21, 1], False)]
    trainer = DPOTrainer(tiny_causal_lm(), tiny_tokenizer(), DPOConfig(train=fast(lora=None, batch_size=4)))
    result = trainer.train(trajectories)
    assert result.steps == 4 and result.losses[-1] < result.losses[0]


def test_dpo_config_errors():
    with pytest.raises(ConfigError, match="beta"):
        DPOConfig(beta=0)
    with pytest.raises(ConfigError, match="pair_by"):
        DPOConfig(pair_by="length")  # type: ignore[arg-type]
