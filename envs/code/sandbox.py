"""The sandbox interface, its configuration, and the registry of backends.

A ``Sandbox`` runs untrusted Python (or a command) and returns an ``ExecResult``::

    from selfgym.envs.code import SandboxConfig, make_sandbox

    with make_sandbox(SandboxConfig(backend="bwrap")) as box:
        result = box.exec("print(sum(range(10)))", timeout_s=2)
        assert result.stdout == "45\\n"

Which failures are results and which raise: anything the *code* does (non-zero exit, exception,
timeout, memory or process limit, output flood) comes back as an ``ExecResult``; only a broken
sandbox (cannot start, worker unresponsive twice) raises ``SandboxError``.

Backends are chosen by name (``bwrap``, ``docker``, ``process``; third parties add theirs with
``register_backend``). ``backend="auto"`` takes the first isolating backend that works on this
host (bwrap, then docker); the unisolated ``process`` backend is used only when named, through
``allow_fallback``, or through the ``SELFGYM_SANDBOX`` environment variable.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from selfgym.errors import ConfigError, SandboxError
from selfgym.types import ExecResult

__all__ = [
    "DEFAULT_PRELOAD",
    "SANDBOX_ENV_VAR",
    "Sandbox",
    "SandboxConfig",
    "available_backends",
    "make_sandbox",
    "register_backend",
    "shared_sandbox",
]

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

    def spawn(self, *, warm: bool) -> Any:
        """Start one worker process and return its ``Transport`` (see ``pool.py``)."""


_BACKENDS: dict[str, Callable[[SandboxConfig], Backend]] = {}


def register_backend(name: str, factory: Callable[[SandboxConfig], Backend]) -> None:
    """Make ``SandboxConfig(backend=name)`` build sandboxes with ``factory(config)``."""
    if name in _BACKENDS:
        raise ValueError(f"sandbox backend {name!r} is already registered")
    _BACKENDS[name] = factory


def _builtin_backends() -> None:
    if "bwrap" in _BACKENDS:
        return
    from .backends import BwrapBackend, DockerBackend, ProcessBackend

    _BACKENDS.update(bwrap=BwrapBackend, docker=DockerBackend, process=ProcessBackend)


def _candidates(config: SandboxConfig) -> list[str]:
    chosen = config.backend
    if chosen == "auto":
        chosen = os.environ.get(SANDBOX_ENV_VAR, "").strip() or "auto"
    names = list(AUTO_ORDER) if chosen == "auto" else [chosen]
    names += [name for name in config.allow_fallback if name not in names]
    unknown = [name for name in names if name not in _BACKENDS]
    if unknown:
        raise ConfigError(f"unknown sandbox backend {unknown[0]!r}; known: {', '.join(sorted(_BACKENDS))}")
    return names


def make_sandbox(config: SandboxConfig | None = None, **overrides: Any) -> Sandbox:
    """Build and start a sandbox: the first candidate backend that passes its self-check.

    Raises:
        SandboxError: no allowed backend works here; the message lists each one's reason.
    """
    from dataclasses import replace

    from .pool import PooledSandbox

    _builtin_backends()
    config = replace(config or SandboxConfig(), **overrides)
    reasons = []
    for name in _candidates(config):
        try:
            backend = _BACKENDS[name](config)
            backend.check()
            sandbox = PooledSandbox(backend, config)
            sandbox.start()
            return sandbox
        except SandboxError as exc:
            reasons.append(f"  {name}: {exc}")
    hint = ("Install bubblewrap (apt install bubblewrap) or start a Docker engine; to run code without "
            f"isolation, opt in with SandboxConfig(backend='process') or {SANDBOX_ENV_VAR}=process.")
    raise SandboxError("no sandbox backend works on this host:\n" + "\n".join(reasons) + "\n" + hint)


def available_backends(config: SandboxConfig | None = None) -> dict[str, str | None]:
    """Each registered backend and why it cannot run here (``None`` when it passes its cheap check)."""
    _builtin_backends()
    config = config or SandboxConfig()
    status: dict[str, str | None] = {}
    for name, factory in sorted(_BACKENDS.items()):
        try:
            factory(config).check()
            status[name] = None
        except SandboxError as exc:
            status[name] = str(exc)
    return status


_SHARED: dict[tuple[int, SandboxConfig], Sandbox] = {}
_SHARED_LOCK = threading.Lock()


def shared_sandbox(config: SandboxConfig | None = None) -> Sandbox:
    """One started sandbox per configuration and process (envs share its warm workers).

    Closed at interpreter exit; do not ``close()`` it yourself. A forked process gets its own.
    """
    key = (os.getpid(), config or SandboxConfig())
    with _SHARED_LOCK:
        sandbox = _SHARED.get(key)
        if sandbox is None or getattr(sandbox, "closed", False):
            sandbox = _SHARED[key] = make_sandbox(key[1])
        return sandbox


@atexit.register
def _close_shared() -> None:
    for (pid, _), sandbox in list(_SHARED.items()):
        if pid == os.getpid():
            sandbox.close()
    _SHARED.clear()
