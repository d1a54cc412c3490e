"""SkyRL-gym interop: selfgym envs as ``skyrl_gym`` text envs, and SkyRL-gym envs as selfgym envs.

Outbound: ``register_skyrl(env_id)`` registers a selfgym env with ``skyrl_gym.register`` under the
same id; ``skyrl_gym.make(env_id, extras={"task_id": ...})`` gives a ``SelfgymTextEnv`` whose
``init`` resets the selfgym env (prompt: the env's instructions as the system message, the first
observation as the user message) and whose ``step(action)`` is one selfgym step as a
``BaseTextEnvStepOutput`` (the next observation as a user message, the reward, ``done`` when the
episode terminated or was truncated; ``metadata`` holds ``success`` and ``action_error``).

Inbound: ``SkyRLEnv`` is a selfgym ``LLMEnv`` over any registered SkyRL-gym env. A task's
``payload`` holds the SkyRL env's ``extras`` (``reward_spec``, ...) and optionally its
``env_config``; the prompt is the task's. ``register_skyrl_env`` registers one as a selfgym env id,
so ``selfgym eval`` and the rollout engine run on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import skyrl_gym
from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput, ConversationType

import selfgym
from selfgym.envs.base import LLMEnv, StepResult
from selfgym.envs.tasks import ListTaskSource
from selfgym.registry import register_env, resolve_env_id
from selfgym.types import Task, TaskSource

__all__ = ["SelfgymTextEnv", "SkyRLEnv", "register_skyrl", "register_skyrl_env"]


class SelfgymTextEnv(BaseTextEnv):
    """A selfgym env as a SkyRL-gym ``BaseTextEnv``.

    Args:
        env_config: SkyRL's per-env config; its ``env_kwargs`` mapping (if any) goes to ``selfgym.make``.
        extras: the dataset row's fields: ``task_id`` (a sampled task without one), ``seed``.
        env_id: the selfgym env (bound by ``register_skyrl``).
    """

    def __init__(self, env_config: Any = None, extras: dict[str, Any] | None = None, *, env_id: str) -> None:
        super().__init__()
        kwargs = dict((env_config or {}).get("env_kwargs", {})) if hasattr(env_config, "get") else {}
        self.env = selfgym.make(env_id, **kwargs)
        self.extras = dict(extras or {})
        self.max_turns = getattr(getattr(self.env, "spec", None), "max_episode_steps", None) or 1
        self.success = False

    def init(self, prompt: ConversationType) -> tuple[ConversationType, dict[str, Any]]:
        task_id = self.extras.get("task_id")
        observation, info = self.env.reset(seed=self.extras.get("seed"),
                                           options={"task": task_id} if task_id else None)
        self.turns, self.success = 0, False
        chat = [{"role": "user", "content": observation}]
        if info.get("instructions"):
            chat.insert(0, {"role": "system", "content": info["instructions"]})
        return chat, {"task_id": info["task"].id}

    def step(self, action: str) -> BaseTextEnvStepOutput:
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.turns += 1
        self.success = bool(info.get("success"))
        done = bool(terminated or truncated)
        return BaseTextEnvStepOutput(
            observations=[] if done else [{"role": "user", "content": observation}], reward=float(reward), done=done,
            metadata={"success": self.success, "action_error": info.get("action_error"), "observation": observation,
                      "terminated": terminated, "truncated": truncated},
            postprocessed_action=None)

    def get_metrics(self) -> dict[str, Any]:
        return {"success": float(self.success), "turns": self.turns}

    def close(self) -> None:
        self.env.close()


def register_skyrl(env_id: str) -> str:
    """Register the selfgym env ``env_id`` with ``skyrl_gym.register`` (once); returns the full id."""
    full = resolve_env_id(env_id)
    if full not in skyrl_gym.registry:
        def create(env_config: Any = None, extras: dict[str, Any] | None = None) -> SelfgymTextEnv:
            return SelfgymTextEnv(env_config, extras, env_id=full)

        skyrl_gym.register(id=full, entry_point=create)
    return full


def _text(messages: Sequence[dict[str, Any]]) -> str:
    return "\n\n".join(str(m.get("content", "")) for m in messages)


class SkyRLEnv(LLMEnv):
    """A SkyRL-gym text env as a selfgym env.

    Observation:
        The task prompt (after the SkyRL env's ``init``), then the text of the observation
        messages of each step.

    Actions:
        Whatever the SkyRL env reads from the model's reply (its own format).

    Rewards:
        The SkyRL env's reward; the episode is a success when it reaches ``success_threshold``.

    Episode End:
        Terminated when the SkyRL env says ``done``; truncated after ``max_episode_steps``.

    Arguments:
        skyrl_id: the registered SkyRL-gym env id (``gsm8k``).
        tasks: tasks whose ``payload`` holds ``extras`` (and optionally ``env_config``) for it.
        success_threshold: reward at or above which an episode counts as solved.
        task_source, split, difficulty, render_mode: see ``LLMEnv``.

    Version History:
        v0: initial version.
    """

    def __init__(self, *, skyrl_id: str, tasks: Sequence[Task] = (), success_threshold: float = 1.0,
                 task_source: TaskSource | None = None, split: Any = "train", difficulty: float | None = None,
                 render_mode: str | None = None) -> None:
        self.skyrl_id = skyrl_id
        self.success_threshold = success_threshold
        self.inner: Any = None
        source = task_source if task_source is not None else ListTaskSource(tasks, name=f"skyrl:{skyrl_id}")
        super().__init__(task_source=source, split=split, difficulty=difficulty, render_mode=render_mode)

    def setup(self, task: Task) -> str:
        self.inner = skyrl_gym.make(self.skyrl_id, env_config=task.payload.get("env_config", {}),
                                    extras=task.payload.get("extras", {}))
        prompt, _ = self.inner.init([{"role": "user", "content": task.prompt}])
        return _text(prompt)

    def env_response(self, action: Any) -> StepResult:
        out = self.inner.step(action)
        reward = float(out["reward"])
        return StepResult(observation=_text(out["observations"]), reward=reward, terminated=bool(out["done"]),
                          success=reward >= self.success_threshold, info={"skyrl": out.get("metadata") or {}})

    def teardown(self) -> None:
        if self.inner is not None:
            self.inner.close()
            self.inner = None


def register_skyrl_env(id: str, skyrl_id: str, tasks: Sequence[Task], *, max_episode_steps: int = 1,
                       success_threshold: float = 1.0, description: str = "") -> str:
    """Register a SkyRL-gym env over ``tasks`` as the selfgym env ``id``; returns the full id."""
    info = register_env(id, SkyRLEnv, max_episode_steps=max_episode_steps,
                        kwargs={"skyrl_id": skyrl_id, "tasks": list(tasks), "success_threshold": success_threshold},
                        description=description or f"SkyRL-gym env {skyrl_id!r}")
    return info.id
