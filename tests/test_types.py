import json

import pytest

from selfgym.types import Completion, ExecResult, Message, Task, Trajectory, Turn


def _roundtrip(record):
    return type(record).from_dict(json.loads(json.dumps(record.to_dict())))


def test_task_roundtrip_and_validation():
    task = Task(id="t1", family="f", prompt="p", split="heldout", payload={"tests": ["assert 1"]}, difficulty=0.5,
                source="procedural:f", parent_id="t0")
    assert _roundtrip(task) == task
    with pytest.raises(ValueError, match="split"):
        Task(id="x", family="f", prompt="p", split="test")
    with pytest.raises(ValueError, match="difficulty"):
        Task(id="x", family="f", prompt="p", difficulty=1.5)
    with pytest.raises(ValueError, match="unknown keys"):
        Task.from_dict({"id": "x", "family": "f", "prompt": "p", "colour": "red"})


def test_trajectory_roundtrip_keeps_token_exact_turns():
    turn = Turn(observation="obs", action="act", reward=1.0, prompt_ids=[1, 2, 3], completion_ids=[4, 5],
                logprobs=[-0.5, -1.25], info={"k": 1})
    traj = Trajectory(task_id="t1", env_id="selfgym/Guess-v0", turns=[turn], success=True, total_reward=1.0,
                      memory={"skills": ["s1"]}, seed=3, instructions="sys")
    back = _roundtrip(traj)
    assert back == traj
    assert back.turns[0].completion_ids == [4, 5] and back.turns[0].logprobs == [-0.5, -1.25]
    assert back.messages() == [{"role": "system", "content": "sys"}, {"role": "user", "content": "obs"},
                               {"role": "assistant", "content": "act"}]


def test_completion_checks_logprob_count_and_turn_copies_it():
    with pytest.raises(ValueError, match="logprobs"):
        Completion(text="a", completion_ids=[1, 2], logprobs=[-1.0])
    comp = Completion(text="a", prompt_ids=[7], completion_ids=[1], logprobs=[-0.1])
    turn = Turn.from_completion("o", comp, reward=0.5)
    assert (turn.action, turn.prompt_ids, turn.completion_ids, turn.logprobs) == ("a", [7], [1], [-0.1])
    assert _roundtrip(comp) == comp


def test_message_and_exec_result():
    assert Message(role="user", content="hi").to_chat() == {"role": "user", "content": "hi"}
    res = ExecResult(stdout="", stderr="boom", exit_code=1)
    assert not res.ok and _roundtrip(res) == res
    assert not ExecResult(stdout="", stderr="", exit_code=0, timed_out=True).ok
