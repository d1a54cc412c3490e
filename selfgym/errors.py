"""Typed errors. Each message says what to do next.

Error policy: the *agent's* mistakes become observations (``ActionError`` is caught by the env and
shown to the agent); infrastructure failures raise ``InfrastructureError`` subclasses and mark the
episode aborted; programming bugs raise whatever they raise.
"""

from __future__ import annotations

__all__ = [
    "ActionError",
    "ConfigError",
    "DuplicateAttemptError",
    "DuplicateRecordError",
    "InfrastructureError",
    "RunLockedError",
    "SandboxError",
    "SelfgymError",
    "StoreError",
    "UnknownEnvError",
    "UnknownTaskError",
]


class SelfgymError(Exception):
    """Base class of every error selfgym raises on purpose."""


class ActionError(SelfgymError):
    """The agent's action could not be used. The env turns it into an observation, never raises it."""


class ConfigError(SelfgymError, ValueError):
    """A configuration value is wrong; the message names the key and the accepted values."""


class UnknownEnvError(SelfgymError, KeyError):
    """No environment is registered under this id."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class UnknownTaskError(SelfgymError, KeyError):
    """A task id is not in the task source."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DuplicateRecordError(SelfgymError):
    """An append-only store record with this id exists already."""


class DuplicateAttemptError(DuplicateRecordError):
    """The store holds this (run, iteration, task, attempt) of a loop run already: a second writer."""


class StoreError(SelfgymError):
    """A store file cannot be used: not a SQLite database, damaged, foreign, or of a newer schema."""


class RunLockedError(SelfgymError):
    """Another live process holds the run's lease (one writer per run)."""


class InfrastructureError(SelfgymError):
    """Something outside the agent broke (sandbox, browser, server). The episode is aborted."""


class SandboxError(InfrastructureError):
    """The sandbox itself failed (not the code it ran)."""
