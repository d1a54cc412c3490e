"""The LLM agent: prompts from env + memory, token-exact turns, budget, batching, ``make_agent`` and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import selfgym
from selfgym.agents import make_agent
from selfgym.agents.base import ScriptedAgent
from selfgym.agents.llm import AgentConfig, LLMAgent
from selfgym.agents.memory import Note, StaticMemory
from selfgym.agents.policy import SamplingParams
from selfgym.agents.testing import CountingPolicy, FunctionPolicy, tiny_policy
from selfgym.errors import ConfigError
from selfgym.run.episode import run_episode
from selfgym.store import Store


def test_episode_turns_are_token_exact_and_prompts_carry_env_and_memory() -> None:
    policy = tiny_policy()
    skills = StaticMemory("skill", [Note(id="skill-bisect", text="Halve the interval every guess.")])
    agent = LLMAgent(policy, AgentConfig(sampling=SamplingParams(max_tokens=8, temperature=1.0)), memory=[skills])
    env = selfgym.make("selfgym/Guess-v0", max_episode_steps=3)
    traj = run_episode(env, agent, seed=4)
    assert len(traj.turns) == 3 and traj.truncated and not traj.success
    tok = policy.tokenizer
    first_prompt = tok.decode(traj.turns[0].prompt_ids)
    assert env.unwrapped.instructions(env.unwrapped.task) in first_prompt
    assert "Halve the interval every guess." in first_prompt and "# Skills you can reuse" in first_prompt
    for i, turn in enumerate(traj.turns):
        assert tok.decode(turn.completion_ids, skip_special_tokens=True) == turn.action
        assert len(turn.logprobs) == len(turn.completion_ids)
        prompt = tok.decode(turn.prompt_ids)
        assert turn.observation in prompt  # the observation the turn records is the one the model saw
        if i:  # the previous reply is in the next prompt, as the assistant's message
            assert f"<|im_start|>assistant\n{traj.turns[i - 1].action}<|im_end|>" in prompt
        assert turn.parse_error == ("reply with exactly one integer; found no integer"
                                    if "Invalid action" in (traj.turns[i + 1].observation if i + 1 < 3 else
                                                            traj.info["final_observation"]) else None)
    assert agent.episode.memory_ids == {"skill": ["skill-bisect"]}
    env.close()


def test_prompt_stays_within_the_token_budget() -> None:
    chatty = FunctionPolicy(lambda chat: "I will guess 5 now. " * 20 + "5")
    agent = LLMAgent(chatty, AgentConfig(max_prompt_tokens=300, sampling=SamplingParams(max_tokens=200)))
    env = selfgym.make("selfgym/Guess-v0", max_episode_steps=8, difficulty=1.0)
    traj = run_episode(env, agent, seed=1, stuck_after=0)  # the same reply every turn, to the last one
    assert len(traj.turns) == 8
    lengths = [len(t.prompt_ids) for t in traj.turns]
    assert max(lengths) <= 300 < len(chatty.tokenizer.encode(" ".join(t.action for t in traj.turns)))
    last = chatty.tokenizer.decode(traj.turns[-1].prompt_ids)
    assert "I am thinking of an integer" in last and "earlier turns left out" in last
    env.close()


def test_act_batch_makes_one_generate_call_for_all_episodes() -> None:
    counted = CountingPolicy(tiny_policy())
    agent = LLMAgent(counted, AgentConfig(sampling=SamplingParams(max_tokens=4)))
    envs = [selfgym.make("selfgym/Guess-v0") for _ in range(5)]
    episodes, observations = [], []
    for i, env in enumerate(envs):
        obs, info = env.reset(seed=i)
        episodes.append(agent.start(obs, info, env))
        observations.append(obs)
    completions = agent.act_batch(episodes, observations)
    assert counted.calls == [5] and len(completions) == 5
    expected = [(o, c.text) for o, c in zip(observations, completions, strict=True)]
    assert [e.history[-1] for e in episodes] == expected
    with pytest.raises(ValueError, match="observations"):
        agent.act_batch(episodes, observations[:2])


def test_tag_format_extracts_the_action_and_keeps_the_reply() -> None:
    agent = LLMAgent(FunctionPolicy(lambda chat: "Midpoint first. <action>4</action>"),
                     AgentConfig(action_format="tag"))
    env = selfgym.make("selfgym/Guess-v0")
    obs, info = env.reset(seed=0)
    episode = agent.start(obs, info)
    assert "<action></action> tags" in episode.system
    completion = agent.act_batch([episode], [obs])[0]
    assert completion.text == "Midpoint first. <action>4</action>"
    assert agent.env_action(completion) == ("4", None)


def test_make_agent_builds_llm_agents_from_specs(tmp_path: Path) -> None:
    env = selfgym.make("selfgym/Guess-v0")
    spec = str(tiny_policy().config.model)
    agent = make_agent(f"llm:{spec}", env, max_prompt_tokens=512)
    assert isinstance(agent, LLMAgent) and agent.config.max_prompt_tokens == 512
    assert agent.policy is make_agent(f"llm:{spec}", env).policy  # loaded once per process
    tuned = make_agent(f"llm:{spec}?max_tokens=16&temperature=0.5&stop=END&action_format=tag", env)
    assert tuned.config.sampling == SamplingParams(max_tokens=16, temperature=0.5, stop=("END",))
    assert tuned.config.action_format == "tag"
    with pytest.raises(ConfigError, match="unknown llm agent option 'temp'"):
        make_agent(f"llm:{spec}?temp=1", env)
    assert isinstance(make_agent("scripted", env), ScriptedAgent)
    with pytest.raises(ConfigError, match="llm:<model dir"):
        make_agent("gpt", env)
    with pytest.raises(ConfigError, match="no such directory"):
        make_agent(f"llm:{tmp_path / 'missing'}", env)
    with pytest.raises(ConfigError, match="action_format"):
        AgentConfig(action_format="json")  # type: ignore[arg-type]


def test_cli_run_with_an_llm_agent_stores_token_exact_trajectories(tmp_path: Path) -> None:
    from selfgym.cli import app

    spec = str(tiny_policy().config.model)
    result = CliRunner().invoke(app, ["run", "selfgym/Guess-v0", "--agent", f"llm:{spec}?max_tokens=8",
                                      "--episodes", "1", "--run-dir", str(tmp_path), "--no-render"])
    assert result.exit_code == 0, result.output
    assert "0/1 solved" in result.output
    store = Store(tmp_path)
    trajectories = store.trajectories()
    assert len(trajectories) == 1 and len(trajectories[0].turns) == 12
    tok = tiny_policy().tokenizer
    for turn in (t for traj in trajectories for t in traj.turns):
        assert tok.decode(turn.completion_ids, skip_special_tokens=True) == turn.action
        assert turn.prompt_ids and turn.observation in tok.decode(turn.prompt_ids)
