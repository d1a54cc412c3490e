"""Multi-turn GRPO on a tiny random model: it learns, it masks, it clips, it recomputes."""

from __future__ import annotations

import pytest
import torch

from selfgym.errors import ConfigError
from selfgym.trainers import GRPOConfig, GRPOTrainer, LoraSettings, TrainConfig
from selfgym.trainers.data import collate, trajectory_rows
from selfgym.trainers.model import token_logprobs
from selfgym.trainers.tiny import greedy_success_rate, single_thread, tiny_causal_lm, upper_half_rollouts
from selfgym.types import Trajectory, Turn

PROMPTS = [[2, 3 + i, 4 + i] for i in range(12)]


@pytest.fixture(autouse=True, scope="module")
def _one_cpu_thread():
    with single_thread():
        yield


def fast(**overrides) -> TrainConfig:
    base = {"learning_rate": 2e-2, "epochs": 2, "batch_size": 48, "micro_batch_size": 24,
            "lora": LoraSettings(r=8, alpha=16)}
    return TrainConfig(**{**base, **overrides})


def agent_logprob(model, traj: Trajectory) -> float:
    """Summed log-probability of the trajectory's agent tokens under ``model``."""
    rows = trajectory_rows(traj)
    batch = collate(rows, pad_id=0)
    with torch.no_grad():
        lp = token_logprobs(model, batch)
    return float(lp[batch.agent_mask[:, 1:]].sum())


@pytest.mark.parametrize("rebuild, turn_credit", [(False, False), (True, True)],
                         ids=["whole-dialogue", "rebuilt-prompts+gigpo"])
def test_grpo_raises_greedy_success_on_a_two_turn_task(rebuild, turn_credit):
    torch.manual_seed(0)
    trainer = GRPOTrainer(tiny_causal_lm(seed=0), GRPOConfig(turn_credit=turn_credit, train=fast()))
    before = greedy_success_rate(trainer.model, PROMPTS, turns=2, rebuild_prompts=rebuild)
    rows = []
    for _ in range(3):
        episodes = upper_half_rollouts(trainer.model, PROMPTS, attempts=8, turns=2, rebuild_prompts=rebuild)
        result = trainer.train(episodes)
        rows.append(result.metrics["data/rows"])
    after = greedy_success_rate(trainer.model, PROMPTS, turns=2, rebuild_prompts=rebuild)
    assert after >= 0.75 and after > before + 0.3, (before, after)
    # one row per episode when the prompts extend each other, one per turn when they were rebuilt
    assert max(rows) <= (2 if rebuild else 1) * 96 and max(rows) > (96 if rebuild else 0)


def test_grpo_on_a_fixed_batch_lowers_its_loss_and_moves_probability_to_the_winners():
    torch.manual_seed(1)
    model = tiny_causal_lm(seed=1)
    episodes = upper_half_rollouts(model, PROMPTS[:6], attempts=8, turns=1)
    trainer = GRPOTrainer(model, GRPOConfig(train=fast(epochs=6, batch_size=48, micro_batch_size=48)))
    winners = [e for e in episodes if e.success]
    losers = [e for e in episodes if not e.success]
    assert winners and losers
    before = {e.id: agent_logprob(trainer.model, e) for e in episodes}
    result = trainer.train(episodes)
    after = {e.id: agent_logprob(trainer.model, e) for e in episodes}
    assert result.steps == 6 and result.losses[-1] < result.losses[0]
    assert sum(after[e.id] - before[e.id] for e in winners) / len(winners) > 0.2
    assert sum(after[e.id] - before[e.id] for e in losers) / len(losers) < -0.2
    assert 0 < result.metrics["charts/clip_frac"] < 1 and result.metrics["charts/approx_kl"] > 0


def test_sampler_logprobs_match_the_trainers_and_missing_ones_are_recomputed():
    torch.manual_seed(2)
    model = tiny_causal_lm(seed=2)
    episodes = upper_half_rollouts(model, PROMPTS[:4], attempts=4, turns=2)
    trainer = GRPOTrainer(model, GRPOConfig(train=fast(epochs=1, batch_size=32, micro_batch_size=32)))
    # the sampler's behaviour logprobs and the trainer's own agree token for token
    for episode in episodes[:4]:
        (row,) = trajectory_rows(episode)
        batch = collate([row], pad_id=0)
        with torch.no_grad():
            lp = token_logprobs(trainer.model, batch)[0]
        expected = batch.behaviour_logprobs[0, 1:][batch.agent_mask[0, 1:]]
        assert torch.allclose(lp[batch.agent_mask[0, 1:]], expected, atol=1e-4)
    stripped = [Trajectory(task_id=e.task_id, env_id=e.env_id, success=e.success, total_reward=e.total_reward,
                           turns=[Turn(observation=t.observation, action=t.action, reward=t.reward,
                                       prompt_ids=t.prompt_ids, completion_ids=t.completion_ids)
                                  for t in e.turns]) for e in episodes]
    result = trainer.train(stripped)
    assert result.metrics["data/recomputed_behaviour_rows"] == result.metrics["data/rows"] > 0
    # one optimizer step from the recomputed logprobs: the ratio is exactly 1, nothing clipped
    assert result.steps == 1
    assert result.metrics["charts/clip_frac"] == 0 and result.metrics["charts/approx_kl"] == pytest.approx(0, abs=1e-6)


def test_tempered_rollouts_are_scored_at_their_temperature():
    from selfgym.trainers.tiny import sample_completions

    torch.manual_seed(5)
    model = tiny_causal_lm(seed=5)
    trainer = GRPOTrainer(model, GRPOConfig(temperature=0.5, train=fast()))
    (completion,) = sample_completions(trainer.model, [2, 3, 4], max_new_tokens=4, temperature=0.5)
    traj = Trajectory(task_id="t", env_id="e", turns=[Turn.from_completion("o", completion)])
    (row,) = trajectory_rows(traj)
    batch = collate([row], pad_id=0)
    with torch.no_grad():
        lp = token_logprobs(trainer.model, batch)[0][batch.agent_mask[0, 1:]]
    assert torch.allclose(lp, torch.tensor(completion.logprobs), atol=1e-4)
    with pytest.raises(ConfigError, match="temperature"):
        GRPOConfig(temperature=0)


def test_kl_to_the_lora_reference_starts_at_zero_and_grows():
    torch.manual_seed(3)
    model = tiny_causal_lm(seed=3)
    episodes = upper_half_rollouts(model, PROMPTS[:6], attempts=6)
    trainer = GRPOTrainer(model, GRPOConfig(kl_coef=0.1, train=fast(epochs=1, batch_size=64, micro_batch_size=32)))
    first = trainer.train(episodes)
    second = trainer.train(episodes)
    assert first.metrics["losses/kl"] == pytest.approx(0.0, abs=1e-7)  # fresh adapter == base model
    assert second.metrics["losses/kl"] > 1e-5


def test_activation_checkpointing_gives_the_same_update_and_is_off_afterwards():
    torch.manual_seed(6)
    episodes = upper_half_rollouts(tiny_causal_lm(seed=6), PROMPTS[:4], attempts=6)
    params = []
    for checkpointing in (False, True):
        trainer = GRPOTrainer(tiny_causal_lm(seed=6), GRPOConfig(train=fast(activation_checkpointing=checkpointing)))
        assert trainer.train(episodes).steps > 0
        assert not trainer.model.get_base_model().is_activation_checkpointing  # generation keeps its KV cache
        params.append([p.detach().clone() for p in trainer.model.parameters() if p.requires_grad])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*params, strict=True))


def test_groups_without_contrast_give_no_step():
    model = tiny_causal_lm()
    trainer = GRPOTrainer(model, GRPOConfig(train=fast()))
    solo = upper_half_rollouts(model, PROMPTS[:3], attempts=1)
    result = trainer.train(solo)
    assert result.steps == 0 and result.metrics["data/left_out_small_groups"] == 3
    same = [Trajectory(task_id="t", env_id="e", total_reward=1.0, success=True,
                       turns=[Turn(observation="o", action="a", prompt_ids=[2, 3], completion_ids=[40, 1])])
            for _ in range(4)]
    assert trainer.train(same).steps == 0
    crashed = upper_half_rollouts(model, PROMPTS[:1], attempts=2)
    crashed[1].aborted = "SandboxError: the sandbox died"  # counted, never scored
    result = trainer.train(crashed)
    assert result.steps == 0 and result.metrics["data/left_out_aborted"] == 1
    assert result.metrics["data/left_out_small_groups"] == 1


def test_full_fine_tune_updates_every_weight_and_kl_needs_a_reference():
    torch.manual_seed(4)
    model = tiny_causal_lm(seed=4)
    episodes = upper_half_rollouts(model, PROMPTS[:4], attempts=6)
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = GRPOTrainer(model, GRPOConfig(train=fast(lora=None, learning_rate=1e-2)))
    assert trainer.train(episodes).steps > 0
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(p, initial[n])]
    assert "model.embed_tokens.weight" in changed and "lm_head.weight" in changed
    with pytest.raises(ConfigError, match="reference"):
        GRPOTrainer(tiny_causal_lm(), GRPOConfig(kl_coef=0.1, train=fast(lora=None))).train(episodes)


def test_tokens_from_another_vocabulary_are_refused():
    trainer = GRPOTrainer(tiny_causal_lm(vocab_size=64), GRPOConfig(train=fast()))
    alien = [Trajectory(task_id="t", env_id="e", total_reward=float(i), success=bool(i),
                        turns=[Turn(observation="o", action="a", prompt_ids=[2, 500], completion_ids=[40, 1])])
             for i in range(2)]
    with pytest.raises(ConfigError, match="vocabulary"):
        trainer.train(alien)


def test_config_errors_say_what_to_change():
    with pytest.raises(ConfigError, match="advantage"):
        GRPOConfig(advantage="median")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="dual_clip"):
        GRPOConfig(dual_clip=0.5)
    with pytest.raises(ConfigError, match="multiple of micro_batch_size"):
        TrainConfig(batch_size=6, micro_batch_size=4)
