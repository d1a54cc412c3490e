"""The sandbox interface, its configuration, and the registry of backends.

A ``Sandbox`` runs untrusted Python (or a command) and returns an ``ExecResult``::

    from selfgym.envs.code import SandboxConfig, make_sandbox

    with make_sandbox(SandboxConfig(backend="bwrap")) as box:
        result = box.exec("print(sum(range(10)))", timeout_s=2)
        assert result.stdout == "45\\n"

Which failures are results and which raise: anything the *code* does (non-zero exit, exception,
timeout, memory or process limit, output flood) comes back as an ``ExecResult``; only a broken
sandbox (cannot start, worker unresponsive twice) raises ``SandboxError``.

This module is the contract (``SandboxConfig`` and the ``Sandbox``, ``Backend`` and ``Transport``
protocols); ``factory.py`` builds sandboxes: backends are chosen by name (``bwrap``, ``docker``,
``process``; third parties add theirs with ``register_backend``). ``backend="auto"`` takes the first
isolating backend that works on this host (bwrap, then docker); the unisolated ``process`` backend
is used only when named, through ``allow_fallback``, or through the ``SELFGYM_SANDBOX`` environment
variable. ``make_sandbox`` and the other factory names stay importable from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from selfgym.errors import ConfigError
from selfgym.types import ExecResult

__all__ = [
    "DEFAULT_PRELOAD",
    "SANDBOX_ENV_VAR",
    "Backend",
    "Sandbox",
    "SandboxConfig",
    "Transport",
]

_FACTORY = ("available_backends", "code_sandbox", "make_sandbox", "register_backend", "shared_sandbox")


def __getattr__(name: str) -> Any:
    """The factory's names, importable from the contract module as before (loaded on first use)."""
    if name in _FACTORY:
        from . import factory

        return getattr(factory, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

SANDBOX_ENV_VAR = "SELFGYM_SANDBOX"
AUTO_ORDER = ("bwrap", "docker")
# Imported once by each warm worker, so that a child's ``import re`` costs nothing.
DEFAULT_PRELOAD = (
    "abc", "bisect", "collections", "copy", "dataclasses", "datetime", "decimal", "enum", "fractions",
    "functools", "hashlib", "heapq", "itertools", "json", "math", "operator", "random", "re",
    "statistics", "string", "textwrap", "typing",
)


@dataclass(frozen=True, kw_only=True)
class SandboxConfig:
    """How code is isolated and limited. Per-call ``timeout_s`` / ``memory_mb`` override the defaults."""

    backend: str = field(default="auto", metadata={
        "help": "bwrap | docker | process | auto (bwrap, then docker; process only if allowed)"})
    allow_fallback: tuple[str, ...] = field(default=(), metadata={
        "help": "backends to try, in order, when the chosen one does not work here (e.g. ('process',))"})
    pool_size: int = field(default=2, metadata={
        "help": "warm workers kept ready; 0 starts a fresh sandbox for every exec (cold)"})
    max_uses: int = field(default=1000, metadata={"help": "a worker is replaced after this many execs"})
    timeout_s: float = field(default=10.0, metadata={"help": "default wall-clock limit of one exec"})
    memory_mb: int = field(default=512, metadata={"help": "default address-space limit of one exec (MiB)"})
    max_procs: int = field(default=32, metadata={"help": "processes/threads one exec may have at once"})
    max_file_mb: int = field(default=16, metadata={"help": "largest file one exec may write (MiB)"})
    scratch_mb: int = field(default=64, metadata={"help": "size of each private tmpfs (/work, /tmp)"})
    max_output_bytes: int = field(default=65536, metadata={"help": "stdout/stderr kept per stream"})
    python: str | None = field(default=None, metadata={
        "help": "interpreter for bwrap/process (default: the host's own, bound read-only); docker uses the image's"})
    ro_binds: tuple[str, ...] = field(default=(), metadata={
        "help": "extra host paths made readable inside bwrap ('src' or 'src:dest')"})
    image: str = field(default="selfgym-sandbox:latest", metadata={
        "help": "docker image (build it from docker/sandbox.Dockerfile)"})
    cpus: float = field(default=1.0, metadata={"help": "docker: CPU quota of one worker container"})
    preload: tuple[str, ...] = field(default=DEFAULT_PRELOAD, metadata={
        "help": "stdlib modules each warm worker imports once, before forking children"})
    modules: tuple[tuple[str, str], ...] = field(default=(), metadata={
        "help": "(name, source) Python modules each warm worker runs once; code then imports them for free"})
    startup_timeout_s: float = field(default=30.0, metadata={"help": "how long a worker may take to start"})

    def __post_init__(self) -> None:
        if self.pool_size < 0:
            raise ConfigError(f"SandboxConfig.pool_size must be >= 0, got {self.pool_size}")
        if self.max_uses < 1:
            raise ConfigError(f"SandboxConfig.max_uses must be >= 1, got {self.max_uses}")
        if self.timeout_s <= 0:
            raise ConfigError(f"SandboxConfig.timeout_s must be > 0, got {self.timeout_s}")
        if self.memory_mb < 64:
            raise ConfigError(f"SandboxConfig.memory_mb must be >= 64 (a Python needs ~30 MiB), got {self.memory_mb}")
        if self.max_procs < 1:
            raise ConfigError(f"SandboxConfig.max_procs must be >= 1, got {self.max_procs}")
        if isinstance(self.allow_fallback, str):
            raise ConfigError("SandboxConfig.allow_fallback is a tuple of names, e.g. ('process',)")


@runtime_checkable
class Sandbox(Protocol):
    """Runs code in isolation.

    ``exec(code)`` runs Python source as the ``__main__`` module of a fresh program whose working
    directory holds ``files`` (so ``files={"skills/__init__.py": ...}`` makes ``import skills``
    work); ``exec([argv...])`` runs a command instead. Failures of the code are results; only
    infrastructure failures raise ``SandboxError``.
    """

    name: str
    isolated: bool

    def exec(
        self,
        code: str | Sequence[str],
        *,
        stdin: str | bytes | None = None,
        files: Mapping[str, str | bytes] | None = None,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult: ...

    def close(self) -> None: ...


class Backend(Protocol):
    """Starts sandbox workers: the part that differs between bwrap, docker and process."""

    name: str
    isolated: bool

    def check(self) -> None:
        """Raise ``SandboxError`` saying why this backend cannot work here (cheap checks only)."""

    def spawn(self, *, warm: bool) -> Transport:
        """Start one worker process and return its ``Transport``."""


class Transport(Protocol):
    """A byte pipe to one worker process, and control over its life."""

    def send(self, data: bytes) -> None: ...

    def recv(self, size: int, deadline: float) -> bytes:
        """Exactly ``size`` bytes; ``EOFError`` if the worker is gone, ``TimeoutError`` at ``deadline``."""

    def alive(self) -> bool: ...

    def kill(self) -> None: ...

    def diagnostics(self) -> str:
        """The worker's own stderr (tail), for error messages."""
