"""Building sandboxes: the registry of backends, ``make_sandbox``, and the shared warm pools.

``make_sandbox(config)`` starts the first candidate backend that passes its self-check;
``shared_sandbox(config)`` keeps one started sandbox per configuration and process; and
``code_sandbox(spec)`` is the one way code tasks get theirs (the code env, the proposal judge and
skill verification): a shared sandbox whose warm workers preload the test harness.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import threading
from collections.abc import Callable
from typing import Any

from selfgym.errors import ConfigError, SandboxError

from .sandbox import AUTO_ORDER, SANDBOX_ENV_VAR, Backend, Sandbox, SandboxConfig

__all__ = ["available_backends", "code_sandbox", "make_sandbox", "register_backend", "shared_sandbox"]


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
    from .pool import PooledSandbox

    _builtin_backends()
    config = dataclasses.replace(config or SandboxConfig(), **overrides)
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


def code_sandbox(spec: Sandbox | SandboxConfig | str | None = None) -> Sandbox:
    """The sandbox code tasks run in: ``spec`` as ``Code-v0`` takes it (a started ``Sandbox`` used as
    it is, a ``SandboxConfig`` or a backend name); else the shared warm pool, whose workers preload
    the test harness."""
    from .verifier import HARNESS_MODULE, harness_source

    if isinstance(spec, Sandbox):
        return spec
    config = SandboxConfig(backend=spec) if isinstance(spec, str) else spec or SandboxConfig()
    if HARNESS_MODULE not in dict(config.modules):
        config = dataclasses.replace(config, modules=(*config.modules, (HARNESS_MODULE, harness_source())))
    return shared_sandbox(config)
