"""The batched rollout engine: groups, seeds, one generate per step, immediate storage, aborted episodes."""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium
import pytest

from selfgym.agents.base import ScriptedAgent
from selfgym.agents.llm import AgentConfig, LLMAgent
from selfgym.agents.policy import PolicyError, SamplingParams
from selfgym.agents.testing import CountingPolicy, FunctionPolicy, tiny_policy
from selfgym.envs.guess import GuessEnv
from selfgym.errors import ConfigError, SandboxError
from selfgym.run.rollout import RolloutConfig, run_rollouts
from selfgym.store import Store
from selfgym.types import Task


def bisect(chat: list[dict[str, str]]) -> str:
    """A scripted Guess player reading only the chat: the midpoint of what the feedback allows."""
    users = [m["content"] for m in chat if m["role"] == "user"]
    low, high = 1, int(re.search(r"between 1 and (\d+)", users[0]).group(1))
    for text in users[1:]:
        if m := re.search(r"greater than (-?\d+)", text):
            low = max(low, int(m.group(1)) + 1)
        if m := re.search(r"less than (-?\d+)", text):
            high = min(high, int(m.group(1)) - 1)
    return str((low + high) // 2)


def bisect_agent() -> tuple[LLMAgent, CountingPolicy]:
    counted = CountingPolicy(FunctionPolicy(bisect, name="bisect"))
    return LLMAgent(counted, AgentConfig(sampling=SamplingParams(max_tokens=16))), counted


def test_groups_of_attempts_with_their_own_seeds() -> None:
    config = RolloutConfig(group_size=4, seed=10, progress=False)
    result = run_rollouts("selfgym/Guess-v0", ScriptedAgent, 3, config)
    trajs = result.trajectories
    assert len(trajs) == 12 and result.success_rate == 1.0 and result.aborted == 0
    for group in range(3):
        members = trajs[group * 4:(group + 1) * 4]
        assert len({t.task_id for t in members}) == 1  # G attempts of one task
        assert [t.attempt for t in members] == [0, 1, 2, 3]
        assert {t.info["group"] for t in members} == {group}
    assert len({t.task_id for t in trajs}) == 3
    assert [t.seed for t in trajs] == list(range(10, 22))
    assert all(t.env_id == "selfgym/Guess-v0" and t.policy_id == "scripted" for t in trajs)
    again = run_rollouts("selfgym/Guess-v0", ScriptedAgent, 3, config)
    assert [t.task_id for t in again.trajectories] == [t.task_id for t in trajs]
    heldout = run_rollouts("selfgym/Guess-v0", ScriptedAgent, 2, RolloutConfig(split="heldout", progress=False))
    assert {t.task_id for t in heldout.trajectories}.isdisjoint(t.task_id for t in trajs)


def test_one_generate_call_per_step_and_the_batch_stays_full(tmp_path: Path) -> None:
    agent, counted = bisect_agent()
    store = Store(tmp_path)
    seen: list[int] = []

    def check_stored(traj: object) -> None:  # another connection sees each trajectory the moment it ends
        with Store(tmp_path) as reader:
            seen.append(reader.count_trajectories(run_id="r1"))
            assert reader.has_trajectory(traj.id) and reader.task(traj.task_id) is not None

    config = RolloutConfig(group_size=2, max_concurrent=8, progress=False)
    result = run_rollouts("selfgym/Guess-v0", agent, 10, config, store=store, on_trajectory=check_stored,
                          run_id="r1")
    turns = sum(len(t.turns) for t in result.trajectories)
    assert result.success_rate == 1.0 and len(result.trajectories) == 20
    assert counted.calls[0] == 8 and max(counted.calls) == 8
    assert len(counted.calls) == result.policy_calls and sum(counted.calls) == turns == result.steps
    assert result.policy_calls < result.steps  # batched: one policy call serves up to 8 env steps
    # finished episodes are replaced at once: the batch is full until the queue runs dry
    assert all(size == 8 for size in counted.calls[: len(counted.calls) // 2])
    assert seen == list(range(1, 21))
    stored = store.trajectories(run_id="r1")
    assert len(stored) == 20 and all(t.turns[0].prompt_ids and t.turns[0].completion_ids for t in stored)
    tok = counted.policy.tokenizer
    assert all(tok.decode(turn.completion_ids, skip_special_tokens=True) == turn.action
               for t in stored for turn in t.turns)


class FlakyGuess(GuessEnv):
    """Guess, but the 'sandbox' dies on secrets divisible by 3 and cannot start on secrets divisible by 7."""

    def setup(self, task: Task) -> str:
        if task.payload["secret"] % 7 == 0:
            raise SandboxError("sandbox failed to start")
        return super().setup(task)

    def env_response(self, guess: int):
        if self.task.payload["secret"] % 3 == 0:
            raise SandboxError("sandbox process died")
        return super().env_response(guess)


def test_infrastructure_errors_abort_only_their_episodes(tmp_path: Path) -> None:
    store = Store(tmp_path)
    result = run_rollouts(lambda: gymnasium.wrappers.TimeLimit(FlakyGuess(difficulty=0.3), 12), ScriptedAgent, 30,
                          RolloutConfig(max_concurrent=6, progress=False), store=store)
    trajs = result.trajectories
    secrets = [FlakyGuess().task_source.get(t.task_id).payload["secret"] for t in trajs]
    for traj, secret in zip(trajs, secrets, strict=True):
        if secret % 7 == 0:
            assert traj.aborted == "SandboxError: sandbox failed to start" and not traj.turns
        elif secret % 3 == 0:
            assert traj.aborted == "SandboxError: sandbox process died" and not traj.success
        else:
            assert traj.aborted is None and traj.success
    assert {t.aborted for t in trajs if t.aborted} == {"SandboxError: sandbox failed to start",
                                                        "SandboxError: sandbox process died"}
    assert result.aborted < len(trajs)
    assert store.count_trajectories(include_aborted=True) == 30
    assert store.count_trajectories() == 30 - result.aborted  # aborted episodes are never scored


def test_a_failed_policy_call_aborts_that_step_and_the_run_goes_on() -> None:
    class FailsOnce(FunctionPolicy):
        def generate(self, prompts, params):
            if len(self.calls) == 1:
                self.calls.append(len(prompts))
                raise PolicyError("server returned 503")
            return super().generate(prompts, params)

    policy = FailsOnce(bisect)
    agent = LLMAgent(policy, AgentConfig(sampling=SamplingParams(max_tokens=16)))
    result = run_rollouts("selfgym/Guess-v0", agent, 6, RolloutConfig(max_concurrent=3, progress=False))
    aborted = [t for t in result.trajectories if t.aborted]
    assert len(aborted) == 3 and all(t.aborted == "PolicyError: server returned 503" for t in aborted)
    assert all(len(t.turns) == 1 for t in aborted)  # the first step's turn is kept
    assert all(t.success for t in result.trajectories if not t.aborted)


def test_tiny_model_rollouts_are_seeded_and_token_exact() -> None:
    agent = LLMAgent(tiny_policy(), AgentConfig(sampling=SamplingParams(max_tokens=6, temperature=1.0)))

    def run(seed: int) -> list:
        config = RolloutConfig(group_size=2, seed=seed, progress=False)
        return run_rollouts("selfgym/Guess-v0", agent, 2, config, env_kwargs={"max_episode_steps": 3}).trajectories

    first, again, other = run(1), run(1), run(2)
    actions = [[t.action for t in traj.turns] for traj in first]
    assert actions == [[t.action for t in traj.turns] for traj in again]
    assert actions != [[t.action for t in traj.turns] for traj in other]
    assert actions[0] != actions[1]  # two attempts of one task are different samples
    tok = tiny_policy().tokenizer
    for traj in first:
        assert len(traj.turns) == 3 and traj.truncated
        for turn in traj.turns:
            assert tok.decode(turn.completion_ids, skip_special_tokens=True) == turn.action
            assert len(turn.logprobs) == len(turn.completion_ids) and all(lp <= 0 for lp in turn.logprobs)


def test_bad_rollout_configs() -> None:
    with pytest.raises(ConfigError, match="group_size"):
        RolloutConfig(group_size=0)
    with pytest.raises(ConfigError, match="BatchAgent"):
        run_rollouts("selfgym/Guess-v0", object(), 1, RolloutConfig(progress=False))
