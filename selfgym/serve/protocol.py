"""The wire format of ``selfgym serve``: OpenEnv's HTTP/WebSocket protocol for text envs.

OpenEnv (``openenv-core``) messages, as its ``env_server`` package defines them:

- client -> server on ``/ws``: ``{"type": "reset", "data": {...}}``, ``{"type": "step", "data":
  <action>}``, ``{"type": "state"}``, ``{"type": "close"}``;
- server -> client: ``{"type": "observation", "data": {"observation": {...}, "reward": r, "done":
  d}}``, ``{"type": "state", "data": {...}}``, ``{"type": "error", "data": {"message": ...,
  "code": ...}}``.

A selfgym env is a text env, so the action is ``{"message": "<text>"}`` (the field name of
OpenEnv's own text envs) and the observation is ``{"text": "<text>", "metadata": {...}}``. The
metadata carries the step's ``info`` as JSON data (``task`` as ``Task.to_dict()``) plus
``terminated`` and ``truncated``, since OpenEnv's ``done`` merges the two. Reset data is
``{"seed": int, "episode_id": str, "options": {"task": <task dict or id>, "split": ..., ...}}``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from selfgym.types import Task

__all__ = [
    "ErrorCode",
    "EnvState",
    "TextAction",
    "TextObservation",
    "decode_options",
    "error_message",
    "json_safe",
    "observation_payload",
]


class TextAction(BaseModel):
    """What a client sends in a step: the agent's text."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(description="the agent's action text")
    metadata: dict[str, Any] = Field(default_factory=dict, description="ignored by selfgym envs")


class TextObservation(BaseModel):
    """What a reset or step returns (``reward`` and ``done`` travel beside it on the wire)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="the observation text")
    done: bool = Field(default=False, description="terminated or truncated")
    reward: float | None = Field(default=None, description="reward of the last action (None after reset)")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="the env's info as JSON data, plus terminated and truncated")


class EnvState(BaseModel):
    """A session's state (``GET /state``, ``{"type": "state"}``)."""

    model_config = ConfigDict(extra="allow")

    episode_id: str | None = Field(default=None, description="the current episode")
    step_count: int = Field(default=0, ge=0, description="steps taken in the current episode")
    env_id: str = Field(default="", description="the registered env this server serves")
    task_id: str | None = Field(default=None, description="the current episode's task")


class ErrorCode:
    """``data.code`` of an error message. The first six are OpenEnv's own."""

    INVALID_JSON = "INVALID_JSON"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    EXECUTION_ERROR = "EXECUTION_ERROR"  # the env raised (a bug in the env); the session goes on
    CAPACITY_REACHED = "CAPACITY_REACHED"  # --max-sessions sessions are open; try again later
    FACTORY_ERROR = "FACTORY_ERROR"  # the env could not be made
    INFRASTRUCTURE_ERROR = "INFRASTRUCTURE_ERROR"  # sandbox/browser failed: the episode is aborted
    RESET_NEEDED = "RESET_NEEDED"  # step before reset or after the episode ended
    UNKNOWN_TASK = "UNKNOWN_TASK"  # options.task names no task of the env's source
    STEP_TIMEOUT = "STEP_TIMEOUT"  # reset/step ran past --step-timeout; the session is closed
    SESSION_TIMEOUT = "SESSION_TIMEOUT"  # no message for --idle-timeout seconds; the session is closed


def json_safe(value: Any) -> Any:
    """``value`` as JSON data: a ``Task`` as its dict, dataclasses as dicts, tuples and sets as
    lists, numpy scalars as numbers, non-finite floats as ``None``, anything else as ``str``."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Task):
        return json_safe(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_safe(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return json_safe(item())
        except (TypeError, ValueError):
            pass
    return str(value)


def observation_payload(text: str, info: dict[str, Any], *, reward: float | None = None,
                        terminated: bool = False, truncated: bool = False) -> dict[str, Any]:
    """The ``data`` of an observation message (and the body of ``/reset`` and ``/step``)."""
    metadata = json_safe(info)
    metadata["terminated"], metadata["truncated"] = bool(terminated), bool(truncated)
    return {"observation": {"text": text, "metadata": metadata},
            "reward": None if reward is None else float(reward), "done": bool(terminated or truncated)}


def error_message(code: str, message: str, **extra: Any) -> str:
    """An OpenEnv error message, serialised."""
    return json.dumps({"type": "error", "data": {"message": message, "code": code, **json_safe(extra)}})


def decode_options(options: Any) -> dict[str, Any]:
    """Reset options from the wire: ``task`` as a dict becomes a ``Task`` again.

    Raises:
        ValueError: ``options`` is not an object, or its ``task`` is neither a task id nor a task dict.
    """
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ValueError(f"reset options must be an object, got {type(options).__name__}")
    options = dict(options)
    task = options.get("task")
    if isinstance(task, dict):
        options["task"] = Task.from_dict(task)
    elif task is not None and not isinstance(task, str):
        raise ValueError(f"options.task must be a task id or a task object, got {type(task).__name__}")
    return options
