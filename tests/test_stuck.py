"""An agent that repeats itself: the same action got the same answer N times in a row ends the episode.

Guess-v0 answers the same guess with the same hint, so a player that always guesses 50 is stuck
from its second turn; a player that alternates two guesses gets the same answers but never the same
exchange twice in a row, and plays its whole turn budget.
"""

from __future__ import annotations

import itertools

import pytest

import selfgym
from selfgym.agents.llm import AgentConfig, LLMAgent
from selfgym.agents.policy import SamplingParams
from selfgym.agents.testing import FunctionPolicy
from selfgym.errors import ConfigError
from selfgym.run.episode import run_episode
from selfgym.run.rollout import RolloutConfig, run_rollouts

TURNS = 12  # Guess-v0's turn budget


def player(reply) -> LLMAgent:
    return LLMAgent(FunctionPolicy(reply, name="repeater"), AgentConfig(sampling=SamplingParams(max_tokens=8)))


def fifty(chat: list[dict[str, str]]) -> str:
    return "50"  # never the secret of the first three seeds' tasks


def test_the_same_exchange_four_times_ends_the_episode_truncated_and_failed() -> None:
    result = run_rollouts("selfgym/Guess-v0", player(fifty), 3, RolloutConfig(progress=False))
    for traj in result.trajectories:
        assert len(traj.turns) == 4 and traj.info["stuck"] == 4
        assert traj.truncated and not traj.terminated and not traj.success
        assert len({turn.action for turn in traj.turns}) == 1
    assert result.stuck == 3  # counted for the console line and the loop's episodes/stuck


def test_off_plays_the_whole_turn_budget() -> None:
    result = run_rollouts("selfgym/Guess-v0", player(fifty), 3, RolloutConfig(progress=False, stuck_after=0))
    assert [len(t.turns) for t in result.trajectories] == [TURNS] * 3
    assert all("stuck" not in t.info for t in result.trajectories) and result.stuck == 0


def test_alternating_actions_are_not_stuck() -> None:
    guesses = itertools.cycle(["40", "60"])
    result = run_rollouts("selfgym/Guess-v0", player(lambda chat: next(guesses)), 1,
                          RolloutConfig(progress=False, seed=3))
    [traj] = result.trajectories
    assert "stuck" not in traj.info
    assert traj.success or len(traj.turns) == TURNS


def test_the_sequential_path_stops_where_the_engine_does() -> None:
    env = selfgym.make("selfgym/Guess-v0")
    engine = run_rollouts("selfgym/Guess-v0", player(fifty), 1, RolloutConfig(progress=False, stuck_after=3))
    alone = run_episode(env, player(fifty), seed=0, task=engine.trajectories[0].task_id, stuck_after=3)
    assert [t.action for t in alone.turns] == [t.action for t in engine.trajectories[0].turns]
    assert alone.info["stuck"] == engine.trajectories[0].info["stuck"] == 3


@pytest.mark.parametrize("bad", [-1, 1])
def test_a_stuck_limit_of_one_or_less_is_refused(bad: int) -> None:
    with pytest.raises(ConfigError, match="stuck_after"):
        RolloutConfig(stuck_after=bad)
