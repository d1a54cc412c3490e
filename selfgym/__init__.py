"""selfgym: Gymnasium-style environments and a training loop for self-improving LLM agents.

Importing ``selfgym`` registers the built-in environments and those of installed plugins (entry
point group ``selfgym.envs``), so ``gymnasium.make("selfgym/Guess-v0")`` and
``gymnasium.make("acme/Echo-v0")`` work right after ``import selfgym``, in gymnasium's vector envs too.
"""

from __future__ import annotations

from selfgym.errors import (
    ActionError,
    ConfigError,
    InfrastructureError,
    SandboxError,
    SelfgymError,
    UnknownEnvError,
)
from selfgym.registry import (
    list_envs,
    list_task_sources,
    load_plugins,
    make,
    make_task_source,
    register_env,
    register_task_source,
)
from selfgym.types import Completion, ExecResult, Message, Task, Trajectory, Turn

__version__ = "0.1.0"

__all__ = [
    "ActionError",
    "Completion",
    "ConfigError",
    "ExecResult",
    "InfrastructureError",
    "Message",
    "SandboxError",
    "SelfgymError",
    "Task",
    "Trajectory",
    "Turn",
    "UnknownEnvError",
    "__version__",
    "list_envs",
    "list_task_sources",
    "make",
    "make_task_source",
    "register_env",
    "register_task_source",
]

from selfgym.envs import register_builtin_envs  # noqa: E402  (registry must exist first)

register_builtin_envs()
load_plugins()  # a plugin's entry point names its light registration function, not its env classes
