"""``selfgym/ProposeTask-v0`` when every solver episode is aborted: the proposal is not judged and the
episode is marked aborted (counted, never scored), instead of ``step`` raising on a NaN pass rate."""

from __future__ import annotations

import socket

import pytest

import selfgym
from selfgym.agents import ScriptedAgent
from selfgym.agents.llm import AgentConfig, LLMAgent
from selfgym.agents.openai_policy import OpenAIConfig, OpenAIPolicy
from selfgym.agents.policy import SamplingParams
from selfgym.envs.generators.env import ProposeTaskEnv
from selfgym.run.episode import run_episode
from selfgym.run.evaluate import summarise
from selfgym.run.passrates import rollout_pass_rates


@pytest.fixture
def dead_solver():
    """The LLM solver of a real OpenAI client whose model server is down: each solver episode aborts."""
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    policy = OpenAIPolicy(OpenAIConfig(base_url=f"http://127.0.0.1:{port}/v1", model="solver", max_retries=0))
    return LLMAgent(policy, AgentConfig(sampling=SamplingParams(max_tokens=16)))


def test_proposal_whose_solver_episodes_all_abort_is_not_judged(dead_solver):
    env = selfgym.make("selfgym/ProposeTask-v0", pass_rates=rollout_pass_rates(dead_solver), solver_attempts=3)
    try:
        env.reset(seed=2)
        observation, reward, terminated, truncated, info = env.step(env.unwrapped.oracle_action())
        assert terminated and reward == 0.0 and not info["success"]
        assert info["valid"] and info["pass_rate"] is None
        assert info["aborted"] == "every one of the 3 solver episodes was aborted"
        assert observation.startswith("Not judged: every one of the 3 solver episodes was aborted")
        assert env.unwrapped.last_task is None  # no task comes out of an unjudged proposal
    finally:
        env.close()


def test_the_proposers_episode_is_counted_as_aborted_not_scored(dead_solver):
    env = ProposeTaskEnv(pass_rates=rollout_pass_rates(dead_solver), solver_attempts=2)
    try:
        traj = run_episode(env, ScriptedAgent(env), seed=2)
        assert traj.aborted == "every one of the 2 solver episodes was aborted" and not traj.success
        task = env.unwrapped.task
        scores = summarise([traj], {task.id: task}, k=1)
        assert scores.aborted == 1 and scores.n_tasks == 0
    finally:
        env.close()
