"""Rejection-sampling fine-tuning through TRL's SFTTrainer, from a real run store to a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from selfgym.errors import ConfigError
from selfgym.store import Store
from selfgym.trainers import (
    CHECKPOINT_META,
    LoraSettings,
    RFTConfig,
    RFTTrainer,
    TrainConfig,
    load_checkpoint,
    make_trainer,
    read_checkpoint,
    train_from_store,
)
from selfgym.trainers.data import collate, trajectory_rows
from selfgym.trainers.rft import select_successes
from selfgym.trainers.tiny import (
    greedy_success_rate,
    single_thread,
    tiny_causal_lm,
    tiny_tokenizer,
    upper_half_rollouts,
)
from selfgym.types import Task, Trajectory, Turn

PROMPTS = [[2, 3 + i, 4 + i] for i in range(12)]


@pytest.fixture(autouse=True, scope="module")
def _one_cpu_thread():
    with single_thread():
        yield


def fast(**overrides) -> TrainConfig:
    base = {"learning_rate": 2e-2, "epochs": 3, "batch_size": 8, "micro_batch_size": 4,
            "lora": LoraSettings(r=8, alpha=16)}
    return TrainConfig(**{**base, **overrides})


def episode(task: str, completion: list[int], ok: bool, prompt: list[int] | None = None) -> Trajectory:
    prompt = prompt or [2, 60, 61, 62, 3]
    return Trajectory(task_id=task, env_id="e", success=ok, total_reward=float(ok),
                      turns=[Turn(observation="o", action="a", prompt_ids=prompt, completion_ids=completion,
                                  reward=float(ok))])


def mean_logprobs(model, trajectories: list[Trajectory]) -> tuple[float, float]:
    """Mean log-probability of the agent tokens and of the context tokens of ``trajectories``."""
    batch = collate([r for t in trajectories for r in trajectory_rows(t)], pad_id=0)
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    lp = logits[:, :-1].log_softmax(-1).gather(-1, batch.input_ids[:, 1:, None])[..., 0]
    agent = batch.agent_mask[:, 1:]
    context = ~agent & batch.attention_mask[:, 1:].bool()
    return float(lp[agent].mean()), float(lp[context].mean())


def test_rft_learns_the_agent_tokens_and_never_the_prompt():
    trajectories = [episode(f"t{i}", [40 + i % 4, 1] if ok else [10, 1], ok,
                            prompt=[2, 60, 61, 62, 3 + i]) for i in range(8) for ok in (True, False)]
    model = tiny_causal_lm(seed=0)
    successes = [t for t in trajectories if t.success]
    agent_before, context_before = mean_logprobs(model, successes)
    trainer = RFTTrainer(model, tiny_tokenizer(), RFTConfig(train=fast(epochs=5)))
    result = trainer.train(trajectories)
    agent_after, context_after = mean_logprobs(trainer.model, successes)
    assert result.metrics["data/selected"] == 8 and result.steps == 5
    assert result.losses[-1] < result.losses[0] / 2
    assert not trainer.model.get_base_model().is_activation_checkpointing  # TRL's default is undone
    assert agent_after > agent_before + 2.0  # the completions are learned ...
    assert context_after < context_before + 0.1  # ... the masked prompt tokens are not
    failures = [t for t in trajectories if not t.success]
    assert mean_logprobs(trainer.model, failures)[0] < agent_after - 2.0


def test_select_successes_dedupes_caps_and_filters():
    same = [episode("a", [40, 1], True) for _ in range(3)]
    other = [episode("a", [41, 1], True), episode("a", [42, 1], True), episode("b", [40, 1], True)]
    failed = [episode("b", [10, 1], False)]
    aborted = episode("c", [40, 1], True)
    aborted.aborted = "SandboxError: crashed"
    kept, stats = select_successes([*same, *other, *failed, aborted], RFTConfig(max_per_task=2))
    assert [(t.task_id, t.turns[0].completion_ids[0]) for t in kept] == [("a", 40), ("a", 41), ("b", 40)]
    assert stats["data/left_out_duplicates"] == 2 and stats["data/left_out_task_cap"] == 1
    low = episode("d", [40, 1], True)
    low.total_reward = 0.5
    assert select_successes([low], RFTConfig(min_reward=1.0))[0] == []
    assert len(select_successes(same, RFTConfig(dedupe=False))[0]) == 3


def test_rft_from_the_store_raises_greedy_success_and_registers_its_checkpoint(tmp_path):
    torch.manual_seed(0)
    base_dir = tmp_path / "base"
    tiny_causal_lm(seed=0).save_pretrained(base_dir)
    model = tiny_causal_lm(seed=0)
    run_dir = tmp_path / "run"
    store = Store(run_dir)
    store.create_run("r1")
    episodes = upper_half_rollouts(model, PROMPTS, attempts=8, turns=2)
    heldout = upper_half_rollouts(model, [[2, 50, 51]], attempts=4, turns=2)
    for e in heldout:
        e.task_id = "held-0"
    store.add_tasks([Task(id=f"toy-{i}", family="toy", prompt="p") for i in range(len(PROMPTS))] +
                    [Task(id="held-0", family="toy", prompt="p", split="heldout")])
    for e in [*episodes, *heldout]:
        e.run_id = "r1"
        store.add_trajectory(e)
    scripted = Trajectory(task_id="toy-0", env_id="toy", run_id="r1", success=True, total_reward=1.0,
                          turns=[Turn(observation="o", action="42")])  # no token ids: never trained on
    store.add_trajectory(scripted)

    before = greedy_success_rate(model, PROMPTS, turns=2)
    trainer = make_trainer("rft", model, tokenizer=tiny_tokenizer(), config=RFTConfig(train=fast()))
    result, info = train_from_store(trainer, store, run_id="r1", iteration=1, run_dir=run_dir,
                                    base_model=str(base_dir))
    after = greedy_success_rate(trainer.model, PROMPTS, turns=2)
    assert after >= 0.75 and after > before + 0.25, (before, after)
    assert result.metrics["data/left_out_heldout"] == 4 and result.metrics["data/left_out_not_token_exact"] == 1
    assert result.metrics["data/selected"] == sum(e.success for e in episodes)

    assert info is not None and (run_dir / "checkpoints").is_dir()
    (registered,) = store.checkpoints("r1")
    assert registered["id"] == info.id and registered["algorithm"] == "rft" and registered["kind"] == "lora"
    assert read_checkpoint(registered["path"]).base_model == str(base_dir)
    # one checkpoint dir per training step, directly under the run's checkpoints/, holding its metadata
    metas = list((run_dir / "checkpoints").glob(f"*/{CHECKPOINT_META}"))
    assert [m.parent.resolve() for m in metas] == [Path(registered["path"])]
    logged = dict((k, v) for _, k, v in store.metrics("r1"))
    assert logged["train/rft/data/selected"] == result.metrics["data/selected"]
    # the checkpoint, loaded on its base from the metadata alone, is the trained policy
    reloaded = load_checkpoint(registered["path"])
    assert greedy_success_rate(reloaded, PROMPTS, turns=2) == after
    store.close()


def test_rft_without_successes_trains_nothing_and_needs_a_tokenizer(tmp_path):
    model = tiny_causal_lm()
    trainer = RFTTrainer(model, tiny_tokenizer(), RFTConfig(train=fast()))
    result = trainer.train([episode("a", [10, 1], False)])
    assert result.steps == 0 and result.metrics["data/selected"] == 0
    with pytest.raises(ConfigError, match="tokenizer"):
        RFTTrainer(model, None)
    with pytest.raises(ConfigError, match="unknown trainer"):
        make_trainer("ppo", model)
