"""Registries of environments and task sources.

``register_env`` wraps ``gymnasium.register``: every env is reachable with
``gymnasium.make("selfgym/<Name>-v0")`` once ``selfgym`` is imported. Third-party packages add
envs through the entry-point group ``selfgym.envs`` and task sources through
``selfgym.task_sources``: each entry point names a callable (or module) that registers them. Entry
points are loaded lazily, on the first ``make`` / ``list_envs`` / ``make_task_source``.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gymnasium

from selfgym.errors import ConfigError, UnknownEnvError

if TYPE_CHECKING:
    from selfgym.types import TaskSource

__all__ = [
    "ENV_ENTRY_POINT_GROUP",
    "TASK_SOURCE_ENTRY_POINT_GROUP",
    "EnvInfo",
    "list_envs",
    "list_task_sources",
    "load_plugins",
    "make",
    "make_task_source",
    "register_env",
    "register_task_source",
    "task_source_from_spec",
]

ENV_ENTRY_POINT_GROUP = "selfgym.envs"
TASK_SOURCE_ENTRY_POINT_GROUP = "selfgym.task_sources"
DEFAULT_NAMESPACE = "selfgym"


@dataclass(frozen=True)
class EnvInfo:
    """What ``selfgym envs`` shows about one registered environment."""

    id: str
    entry_point: str | Callable[..., Any]
    description: str = ""
    max_episode_steps: int | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    plugin: str | None = None  # the distribution that registered it, if a third party


_ENVS: dict[str, EnvInfo] = {}
_TASK_SOURCES: dict[str, tuple[Callable[..., TaskSource], str]] = {}
_plugins_loaded = False
_loading_plugin: str | None = None


def register_env(
    id: str,
    entry_point: str | Callable[..., Any],
    *,
    description: str = "",
    max_episode_steps: int | None = None,
    kwargs: dict[str, Any] | None = None,
) -> EnvInfo:
    """Register an environment with gymnasium and list it in ``selfgym envs``.

    Args:
        id: ``"Name-v0"`` (registered as ``selfgym/Name-v0``) or a namespaced ``"acme/Name-v0"``.
        entry_point: ``"module:Class"`` (imported lazily) or a callable returning the env.
        description: one line for ``selfgym envs``.
        max_episode_steps: the turn budget; running out of it sets ``truncated``.
        kwargs: default constructor arguments (``gymnasium.make`` arguments override them).
    """
    full_id = id if "/" in id else f"{DEFAULT_NAMESPACE}/{id}"
    if full_id in _ENVS:
        raise ValueError(f"environment {full_id!r} is already registered; bump its version (-v1) to change it")
    gymnasium.register(id=full_id, entry_point=entry_point, max_episode_steps=max_episode_steps, kwargs=kwargs or {})
    info = EnvInfo(full_id, entry_point, description, max_episode_steps, dict(kwargs or {}), _loading_plugin)
    _ENVS[full_id] = info
    return info


def register_task_source(name: str, factory: Callable[..., TaskSource], *, description: str = "") -> None:
    """Register a task source factory under ``name`` (``make_task_source(name, **kwargs)`` calls it)."""
    if name in _TASK_SOURCES:
        raise ValueError(f"task source {name!r} is already registered")
    _TASK_SOURCES[name] = (factory, description)


def load_plugins() -> None:
    """Load third-party envs and task sources from their entry points (once).

    A plugin that fails to load is reported with a warning and skipped: one broken package must not
    take the others down.
    """
    global _plugins_loaded, _loading_plugin
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for group in (ENV_ENTRY_POINT_GROUP, TASK_SOURCE_ENTRY_POINT_GROUP):
        for ep in importlib.metadata.entry_points(group=group):
            _loading_plugin = ep.dist.name if ep.dist is not None else ep.value
            try:
                target = ep.load()
                if callable(target):
                    target()
            except Exception as exc:  # noqa: BLE001 - a plugin's bug is reported, not fatal
                warnings.warn(f"selfgym plugin {ep.name!r} ({ep.value}) failed to load: {exc!r}", stacklevel=2)
            finally:
                _loading_plugin = None


def list_envs() -> list[EnvInfo]:
    """Every registered selfgym environment, plugins included, sorted by id."""
    load_plugins()
    return sorted(_ENVS.values(), key=lambda info: info.id)


def list_task_sources() -> dict[str, str]:
    """Registered task source names with their one-line descriptions."""
    load_plugins()
    return {name: desc for name, (_, desc) in sorted(_TASK_SOURCES.items())}


def resolve_env_id(env_id: str) -> str:
    """Full id for ``env_id`` (``Code-v0`` -> ``selfgym/Code-v0``); ``UnknownEnvError`` with suggestions."""
    load_plugins()
    candidates = [env_id] if "/" in env_id else [f"{DEFAULT_NAMESPACE}/{env_id}", env_id]
    for candidate in candidates:
        if candidate in _ENVS or candidate in gymnasium.registry:
            return candidate
    close = difflib.get_close_matches(env_id, list(_ENVS), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else " Run `selfgym envs` to list them."
    raise UnknownEnvError(f"no environment registered as {env_id!r}.{hint}")


REMOTE_ENV_ENTRY_POINT = "selfgym.envs.remote:RemoteEnv"
"""The client of ``selfgym serve``, named as gymnasium names entry points (the core never imports it)."""


def make(env_id: str, *, remote: str | None = None, **kwargs: Any) -> gymnasium.Env:
    """``gymnasium.make`` that also knows plugin envs and short ids (``Code-v0``).

    With ``remote="ws://host:port"`` the env runs on that env server (``selfgym serve``, or any
    OpenEnv server) and ``kwargs`` go to ``RemoteEnv`` (``connect_timeout``, ``message_timeout``...).
    """
    if remote is not None:
        env: gymnasium.Env = lazy_factory(REMOTE_ENV_ENTRY_POINT)(url=remote, env_id=env_id, **kwargs)
        return env
    full = resolve_env_id(env_id)
    try:
        return gymnasium.make(full, **kwargs)
    except TypeError as exc:
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if unknown is None or unknown.group(1) not in kwargs:
            raise
        takes = ", ".join(env_arguments(full)) or "none"
        raise ConfigError(f"{full} takes no argument {unknown.group(1)!r}; its arguments: {takes}") from exc


def env_arguments(env_id: str) -> list[str]:
    """The keyword arguments ``make(env_id, ...)`` passes on to the env (its constructor's and
    gymnasium's ``max_episode_steps``), for error messages and docs."""
    spec = gymnasium.spec(resolve_env_id(env_id))
    entry = spec.entry_point
    creator: Any = gymnasium.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
    try:
        params = inspect.signature(creator).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: nothing to read
        return ["max_episode_steps"]
    named = [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"]
    return sorted({*named, "max_episode_steps"})


def make_task_source(name: str, **kwargs: Any) -> TaskSource:
    """Build the task source registered as ``name``."""
    load_plugins()
    if name not in _TASK_SOURCES:
        close = difflib.get_close_matches(name, list(_TASK_SOURCES), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else f" Known: {', '.join(sorted(_TASK_SOURCES))}."
        raise KeyError(f"no task source registered as {name!r}.{hint}")
    factory, _ = _TASK_SOURCES[name]
    return factory(**kwargs)


def task_source_from_spec(spec: str) -> TaskSource:
    """``NAME`` or ``NAME:PATH`` (``humaneval``, ``code-jsonl:tasks.jsonl``) as a task source.

    Raises:
        ConfigError: no task source is registered under NAME (the message names close ones).
    """
    name, _, path = spec.partition(":")
    try:
        return make_task_source(name, **({"path": path} if path else {}))
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from None


def lazy_factory(path: str) -> Callable[..., Any]:
    """A factory for ``"module:attr"`` that imports the module only when called."""
    module_name, _, attr = path.partition(":")

    def factory(**kwargs: Any) -> Any:
        return getattr(importlib.import_module(module_name), attr)(**kwargs)

    factory.__qualname__ = f"lazy({path})"
    return factory
