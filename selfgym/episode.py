"""Play one episode of one agent and record it as a ``Trajectory``.

The sequential path (CLI ``selfgym run``, tests). The batched rollout engine records episodes with
the same schema.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium

from selfgym.errors import InfrastructureError
from selfgym.types import Task, Trajectory, Turn

__all__ = ["run_episode"]


def run_episode(
    env: gymnasium.Env,
    agent: Any,
    *,
    seed: int | None = None,
    task: Task | str | None = None,
    split: str | None = None,
    **trajectory_fields: Any,
) -> Trajectory:
    """Run ``agent`` in ``env`` until the episode ends.

    An ``InfrastructureError`` (a crashed sandbox, a dead browser) ends the episode as ``aborted``
    instead of raising: it is counted, never scored. Other exceptions are bugs and propagate.

    Args:
        task: a ``Task`` or task id passed to ``reset`` as ``options["task"]``; else one is sampled.
        split: the split to sample from when no task is given.
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
    try:
        while True:
            completion = agent.act(observation, info)
            # an LLM agent may extract the action from its reply (e.g. from <action> tags)
            action, extract_error = agent.env_action(completion) if hasattr(agent, "env_action") \
                else (completion.text, None)
            next_obs, reward, terminated, truncated, info = env.step(action)
            turn = Turn.from_completion(observation, completion, reward=float(reward),
                                        parse_error=info.get("action_error"))
            if action != completion.text:
                turn.info["env_action"] = action
            if extract_error:
                turn.info["extract_error"] = extract_error
            turn.info.update(info.get("turn_info") or {})  # what the env asks to keep on the turn
            traj.turns.append(turn)
            traj.total_reward += float(reward)
            observation = next_obs
            if terminated or truncated:
                traj.terminated, traj.truncated = bool(terminated), bool(truncated)
                traj.success = bool(info.get("success", False))
                # an env that recovered from an infrastructure failure (dead browser) says so here
                traj.aborted = info.get("aborted") or None
                break
    except InfrastructureError as exc:
        traj.aborted = f"{type(exc).__name__}: {exc}"
    episode = getattr(agent, "episode", None)
    traj.memory = dict(getattr(episode, "memory_ids", None) or {})
    traj.info["final_observation"] = observation
    traj.duration_s = time.perf_counter() - start
    return traj
