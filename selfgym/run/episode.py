"""Play one episode of one agent and record it as a ``Trajectory``.

The sequential path (CLI ``selfgym run``, tests). The batched rollout engine records episodes with
the same schema.

An agent that is stuck (the same action got the same answer ``stuck_after`` times in a row) has its
episode ended there as ``truncated``, with ``info["stuck"]`` = the count: a deterministic env gives
the same answer again, so the rest of the turn budget would only burn tokens (OpenHands' stuck
detector and SWE-agent's format-error limit do the same). It is never a success; the env's verdict
is untouched.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium

from selfgym.agents.base import Agent, env_action
from selfgym.errors import InfrastructureError
from selfgym.types import Task, Trajectory, Turn

__all__ = ["STUCK_AFTER", "end_trajectory", "record_turn", "run_episode"]

STUCK_AFTER = 4  # default: the same exchange this many times in a row ends the episode


def record_turn(traj: Trajectory, observation: str, completion: Any, action: str, extract_error: str | None,
                outcome: tuple[str, Any, bool, bool, dict[str, Any]], *, stuck_after: int = STUCK_AFTER) -> bool:
    """Append one turn (what the agent saw, its token-exact reply, the env's answer) to ``traj``;
    True when the episode ended, with its end flags set. Shared by ``run_episode`` and the
    rollout engine, so both record the same schema. ``stuck_after`` > 0 ends the episode as
    ``truncated`` once the same action has got the same answer that many times in a row."""
    answer, reward, terminated, truncated, info = outcome
    turn = Turn.from_completion(observation, completion, reward=float(reward), parse_error=info.get("action_error"))
    if action != completion.text:
        turn.info["env_action"] = action
    if extract_error:
        turn.info["extract_error"] = extract_error
    turn.info.update(info.get("turn_info") or {})  # what the env asks to keep on the turn
    traj.turns.append(turn)
    traj.total_reward += float(reward)
    if not (terminated or truncated):
        if not stuck_after or (repeats := _repeats(traj.turns, answer)) < stuck_after:
            return False
        traj.info["stuck"] = repeats
        truncated = True
    traj.terminated, traj.truncated = bool(terminated), bool(truncated)
    traj.success = bool(info.get("success", False))
    traj.aborted = info.get("aborted") or None  # an env that recovered from a dead browser says so here
    return True


def _repeats(turns: list[Turn], answer: str) -> int:
    """How many exchanges in a row, ending with the last turn, had its action and got ``answer``."""
    def sent(turn: Turn) -> str:
        return str(turn.info.get("env_action", turn.action))

    last = sent(turns[-1])
    count, reply = 0, answer
    for i in range(len(turns) - 1, -1, -1):
        if sent(turns[i]) != last or reply != answer:
            break
        count += 1
        reply = turns[i].observation  # the answer the turn before got
    return count


def end_trajectory(traj: Trajectory, final_observation: str, memory_ids: Any, started: float,
                   aborted: BaseException | None = None) -> None:
    """What every episode records when it ends: abort reason, memory ids, final observation, time."""
    if aborted is not None:
        traj.aborted = f"{type(aborted).__name__}: {aborted}"
    traj.memory = dict(memory_ids or {})
    traj.info["final_observation"] = final_observation
    traj.duration_s = time.perf_counter() - started


def run_episode(
    env: gymnasium.Env,
    agent: Agent,
    *,
    seed: int | None = None,
    task: Task | str | None = None,
    split: str | None = None,
    stuck_after: int = STUCK_AFTER,
    **trajectory_fields: Any,
) -> Trajectory:
    """Run ``agent`` in ``env`` until the episode ends.

    An ``InfrastructureError`` (a crashed sandbox, a dead browser) ends the episode as ``aborted``
    instead of raising: it is counted, never scored. Other exceptions are bugs and propagate.

    Args:
        task: a ``Task`` or task id passed to ``reset`` as ``options["task"]``; else one is sampled.
        split: the split to sample from when no task is given.
        stuck_after: end the episode (truncated) when the same action got the same answer this many
            times in a row; 0 never does.
        trajectory_fields: extra ``Trajectory`` fields (``run_id``, ``iteration``, ``attempt``, ...).
    """
    options: dict[str, Any] = {}
    if task is not None:
        options["task"] = task
    if split is not None:
        options["split"] = split
    start = time.perf_counter()
    observation, info = env.reset(seed=seed, options=options)
    chosen: Task = info["task"]
    traj = Trajectory(task_id=chosen.id, env_id=env.spec.id if env.spec else type(env.unwrapped).__name__,
                      seed=seed, instructions=info.get("instructions", ""), **trajectory_fields)
    agent.reset(observation, info)
    aborted = None
    try:
        while True:
            completion = agent.act(observation, info)
            action, extract_error = env_action(agent, completion)
            outcome = env.step(action)
            ended = record_turn(traj, observation, completion, action, extract_error, outcome,
                                stuck_after=stuck_after)
            observation, info = outcome[0], outcome[4]
            if ended:
                break
    except InfrastructureError as exc:
        aborted = exc
    end_trajectory(traj, observation, getattr(getattr(agent, "episode", None), "memory_ids", None), start, aborted)
    return traj
