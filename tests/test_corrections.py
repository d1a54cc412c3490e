"""RFT on self-debugging corrections: a success at a later attempt becomes a first-attempt target.

The episodes are real ``selfgym/Code-v0`` episodes (sandboxed tests, test feedback between
attempts) played by the LLM agent over a scripted policy that answers wrong first and right after
the feedback, tokenised by the tiny test model's real tokenizer; training uses that tiny model.
"""

from __future__ import annotations

import math

import pytest
import torch

import selfgym
from selfgym.agents.llm import AgentConfig, LLMAgent
from selfgym.agents.policy import SamplingParams
from selfgym.agents.testing import FunctionPolicy, tiny_tokenizer
from selfgym.envs.code.families import FAMILIES
from selfgym.models import load_model, tiny_model_dir
from selfgym.run.episode import run_episode
from selfgym.trainers import RFTConfig, RFTTrainer, TrainConfig
from selfgym.trainers.data import IGNORE_INDEX, correction_row, correction_turn, sft_labels, trajectory_rows
from selfgym.trainers.rft import rft_rows
from selfgym.trainers.tiny import single_thread
from selfgym.types import Task, Trajectory, Turn


@pytest.fixture(autouse=True, scope="module")
def _one_cpu_thread():
    with single_thread():
        yield


def _reply(task: Task, *, fail_first: bool):
    """Replies to the chat: a wrong function before any feedback (when ``fail_first``), the reference after."""
    wrong = f"```python\ndef {task.payload['entry_point']}(*args):\n    return None\n```"
    right = f"```python\n{task.payload['reference'].rstrip()}\n```"

    def reply(chat: list[dict[str, str]]) -> str:
        answered = any(m["role"] == "assistant" for m in chat)
        return right if answered or not fail_first else wrong
    return reply


def play(task: Task, *, fail_first: bool = True, max_attempts: int = 3) -> Trajectory:
    """One real Code-v0 episode of the LLM agent over the scripted policy."""
    policy = FunctionPolicy(_reply(task, fail_first=fail_first), tokenizer=tiny_tokenizer())
    agent = LLMAgent(policy, AgentConfig(sampling=SamplingParams(max_tokens=256)))
    env = selfgym.make("selfgym/Code-v0", max_attempts=max_attempts)
    try:
        return run_episode(env, agent, task=task)
    finally:
        env.close()


TASKS = [FAMILIES["arithmetic"].make(seed, 0.0) for seed in (1, 3, 5, 7)]


@pytest.fixture(scope="module")
def fixed() -> Trajectory:
    """Failed at attempt 1, passed at attempt 2."""
    return play(TASKS[0])


def test_the_episode_records_which_attempt_passed(fixed: Trajectory) -> None:
    assert fixed.success and len(fixed.turns) == 2
    assert [t.info.get("attempt") for t in fixed.turns] == [1, 2] and [t.reward for t in fixed.turns] == [0.0, 1.0]
    assert correction_turn(fixed) == 1
    first_try = play(TASKS[0], fail_first=False)
    assert first_try.success and len(first_try.turns) == 1 and correction_turn(first_try) is None
    failed = play(TASKS[0], max_attempts=1)
    assert not failed.success and correction_turn(failed) is None


def test_correction_row_is_the_first_prompt_then_the_passing_attempt(fixed: Trajectory) -> None:
    first, passed = fixed.turns
    row = correction_row(fixed)
    assert row is not None and row.trajectory_id == fixed.id
    assert row.input_ids == first.prompt_ids + passed.completion_ids
    assert sft_labels(row) == [IGNORE_INDEX] * len(first.prompt_ids) + passed.completion_ids
    assert set(row.turn_index) == {-1, 1}
    assert all(math.isnan(x) for x in row.behaviour_logprobs)  # not sampled in this context
    assert first.completion_ids != passed.completion_ids  # the failed attempt is not the target


def test_corrections_label_the_passing_attempt_twice_and_the_failed_one_never(fixed: Trajectory) -> None:
    first, passed = fixed.turns
    rows, stats = rft_rows([fixed], RFTConfig(corrections=True))
    assert stats["data/corrections"] == 1 and stats["data/unlabelled_failed_tokens"] == len(first.completion_ids)
    assert rows[0].input_ids == first.prompt_ids + passed.completion_ids
    labelled = [[t for t, agent in zip(r.input_ids, r.agent_mask, strict=True) if agent] for r in rows]
    assert labelled == [passed.completion_ids] * 2
    assert all(k in (-1, 1) for r in rows for k in r.turn_index)
    in_dialogue = rows[1]  # the passing turn in the context it was written in: the failure and its feedback
    assert in_dialogue.input_ids == passed.prompt_ids + passed.completion_ids
    assert in_dialogue.input_ids[:len(first.prompt_ids)] == first.prompt_ids
    assert stats["data/agent_tokens"] == 2 * len(passed.completion_ids)


def test_without_corrections_the_rows_are_unchanged(fixed: Trajectory) -> None:
    first_try = play(TASKS[1], fail_first=False)
    rows, stats = rft_rows([fixed, first_try], RFTConfig())
    expected = trajectory_rows(fixed) + trajectory_rows(first_try)
    assert [(r.input_ids, r.agent_mask, r.turn_index) for r in rows] == \
        [(r.input_ids, r.agent_mask, r.turn_index) for r in expected]
    assert any(k == 0 for r in rows for k, agent in zip(r.turn_index, r.agent_mask, strict=True) if agent)
    assert "data/corrections" not in stats
    # first-attempt successes are the same rows with corrections on
    on, _ = rft_rows([first_try], RFTConfig(corrections=True))
    assert [(r.input_ids, r.agent_mask) for r in on] == [(r.input_ids, r.agent_mask) for r in trajectory_rows(first_try)]


def test_multi_turn_successes_without_attempts_are_not_corrections() -> None:
    turns = [Turn(observation=f"o{k}", action=f"a{k}", prompt_ids=[2, 3 + k], completion_ids=[10 + k, 1],
                  reward=float(k == 2)) for k in range(3)]
    tool_episode = Trajectory(task_id="t", env_id="selfgym/Tools-v0", turns=turns, success=True, total_reward=1.0)
    assert correction_turn(tool_episode) is None
    rows, stats = rft_rows([tool_episode], RFTConfig(corrections=True))
    assert stats["data/corrections"] == 0 and sum(r.n_agent_tokens for r in rows) == 6


@torch.no_grad()
def first_prompt_logprob(model, traj: Trajectory, turn: int) -> float:
    """Log-probability of turn ``turn``'s completion right after the *first* prompt."""
    prompt, completion = traj.turns[0].prompt_ids, traj.turns[turn].completion_ids
    ids = torch.tensor([prompt + completion])
    logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1]
    return float(logits.log_softmax(-1).gather(-1, torch.tensor(completion)[:, None]).sum())


@pytest.mark.slow
def test_training_on_corrections_raises_the_first_attempt_likelihood_of_the_fix() -> None:
    episodes = [play(task) for task in TASKS]
    assert all(e.success and len(e.turns) == 2 for e in episodes)
    fix_gain, fail_gain, metrics = {}, {}, {}
    for corrections in (False, True):
        model, tokenizer = load_model(tiny_model_dir(), device="cpu")
        before = [sum(first_prompt_logprob(model, e, k) for e in episodes) for k in (-1, 0)]
        # full fine-tuning of the tiny model learns in a couple of epochs, with little noise between seeds
        train = TrainConfig(learning_rate=1e-3, epochs=2, batch_size=4, micro_batch_size=2, lora=None)
        trainer = RFTTrainer(model, tokenizer, RFTConfig(train=train, corrections=corrections))
        metrics[corrections] = trainer.train(episodes).metrics
        trainer.model.eval()
        after = [sum(first_prompt_logprob(trainer.model, e, k) for e in episodes) for k in (-1, 0)]
        fix_gain[corrections], fail_gain[corrections] = after[0] - before[0], after[1] - before[1]
    assert metrics[True]["data/corrections"] == 4 and metrics[True]["data/rows"] == 8
    assert metrics[True]["data/unlabelled_failed_tokens"] == sum(len(e.turns[0].completion_ids) for e in episodes)
    assert fix_gain[True] > 0 and fix_gain[True] > fix_gain[False] + 10.0, fix_gain
    # after the first prompt, the fix gains on the failed attempt more with corrections than without
    assert fix_gain[True] - fail_gain[True] > fix_gain[False] - fail_gain[False] + 5.0, (fix_gain, fail_gain)


def test_the_shipped_config_turns_corrections_on_for_the_loop() -> None:
    from pathlib import Path

    from selfgym.config import load_toml
    from selfgym.run.loopconfig import RunConfig

    config = load_toml(Path(__file__).resolve().parents[1] / "configs" / "rft_corrections.toml", RunConfig)
    rft = config.trainer.algorithm_config()  # what train_policy hands make_trainer
    assert isinstance(rft, RFTConfig) and rft.corrections and config.env.kwargs["max_attempts"] == 3
    assert not load_toml(Path(__file__).resolve().parents[1] / "configs" / "rft.toml", RunConfig).trainer.rft.corrections
