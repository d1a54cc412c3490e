"""Sandbox backends: how a worker process is started (``bwrap``, ``process``; ``docker`` lives in
``docker_backend.py``). Each backend only builds the worker's launch; the pool and the fork server
are shared.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from selfgym.errors import SandboxError

from .docker_backend import DockerBackend
from .pool import WORKER_ENV, PipeTransport, child_env, sandbox_uid, worker_config, worker_launch
from .sandbox import SandboxConfig

__all__ = ["BwrapBackend", "DockerBackend", "ProcessBackend"]

MIB = 1024 * 1024
WORKDIR = "/work"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What the fork server needs inside bwrap when started as root: drop to a uid per child, kill its
# leftovers, hand it the work dir and wipe it afterwards. Everything else is dropped.
WORKER_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER")


class BwrapBackend:
    """bubblewrap: new pid/net/ipc/uts namespaces, read-only system dirs, private tmpfs work dirs.

    Only ``/usr`` (and the ``/bin``, ``/lib*`` links), the interpreter's prefix and ``ro_binds`` are
    visible, read-only; ``/work``, ``/tmp`` and ``/dev/shm`` are private tmpfs of ``scratch_mb``.
    As root, children run under a fresh unprivileged uid (so ``RLIMIT_NPROC`` holds) and the worker
    keeps only the capabilities it needs; otherwise bwrap uses a user namespace.
    """

    name = "bwrap"
    isolated = True

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.bwrap = shutil.which("bwrap")
        self.python = os.path.realpath(config.python or sys.executable)
        self.root = os.geteuid() == 0

    def check(self) -> None:
        if self.bwrap is None:
            raise SandboxError("bwrap is not installed (Debian/Ubuntu: apt install bubblewrap)")
        if not os.access(self.python, os.X_OK):
            raise SandboxError(f"interpreter {self.python!r} is not executable")

    def spawn(self, *, warm: bool) -> PipeTransport:
        argv, payload = self.launch(warm=warm)
        transport = PipeTransport(argv, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        transport.boot(payload)
        return transport

    def launch(self, *, warm: bool) -> tuple[list[str], bytes]:
        """The full bwrap command line of one worker, and what to send to its stdin."""
        assert self.bwrap is not None
        size = str(self.config.scratch_mb * MIB)
        uid = sandbox_uid() if self.root else None
        env = child_env(WORKDIR)
        argv = [self.bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net",
                "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
        argv += self._binds()
        argv += ["--proc", "/proc", "--dev", "/dev",
                 "--perms", "1777", "--size", size, "--tmpfs", "/tmp",
                 "--perms", "1777", "--size", size, "--tmpfs", "/dev/shm",
                 "--size", size, "--tmpfs", WORKDIR,
                 # The root is bwrap's own tmpfs: without a user to switch to (not root), the program
                 # owns it, and a file it wrote there would outlive the exec (the wipe covers only the
                 # scratch dirs). Read-only, like everything outside the scratch dirs.
                 "--remount-ro", "/", "--chdir", WORKDIR, "--clearenv"]
        for key, value in {**env, **WORKER_ENV}.items():
            argv += ["--setenv", key, value]
        if self.root:
            argv += ["--cap-drop", "ALL"]
            for cap in WORKER_CAPS:
                argv += ["--cap-add", cap]
        config = worker_config(self.config, workdir=WORKDIR, scratch=["/tmp", "/dev/shm"], pidns=True,
                               uid=uid, warm=warm, env=env)
        command, payload = worker_launch(self.python, config)
        return [*argv, "--", *command], payload

    def _binds(self) -> list[str]:
        binds: list[str] = []
        for path in SYSTEM_DIRS:
            if os.path.islink(path):
                binds += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                binds += ["--ro-bind", path, path]
        prefix = os.path.dirname(os.path.dirname(self.python))
        if not prefix.startswith("/usr/") and prefix != "/usr":
            binds += _bind_readable(prefix, prefix)
        for spec in self.config.ro_binds:
            src, _, dest = spec.partition(":")
            binds += _bind_readable(src, dest or src)
        return binds


def _bind_readable(src: str, dest: str) -> list[str]:
    """A read-only bind whose parent dirs are traversable by the sandbox uid (bwrap makes them 0700)."""
    parents = [str(p) for p in reversed(Path(dest).parents) if str(p) != "/"]
    args: list[str] = []
    for parent in parents:
        args += ["--perms", "0755", "--dir", parent]
    return args + ["--ro-bind", src, dest]


class _ProcessTransport(PipeTransport):
    """A local worker with a private host work dir, removed with the worker."""

    def __init__(self, argv: list[str], *, env: dict[str, str], workdir: str) -> None:
        self.workdir = workdir
        super().__init__(argv, env=env)

    def kill(self) -> None:
        super().kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


_warned_process = False


class ProcessBackend:
    """A plain subprocess with rlimits and a private work dir: NO isolation (opt-in only).

    The code can read and write whatever this user can, and reach the network. Use it where no
    isolating backend works and the code is trusted (for example, canonical solutions).
    """

    name = "process"
    isolated = False

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.python = config.python or sys.executable

    def check(self) -> None:
        if not os.access(self.python, os.X_OK):
            raise SandboxError(f"interpreter {self.python!r} is not executable")

    def spawn(self, *, warm: bool) -> _ProcessTransport:
        global _warned_process
        if not _warned_process:  # once per process, when code is about to run unisolated
            _warned_process = True
            warnings.warn("sandbox backend 'process' runs code WITHOUT isolation (rlimits only): it can read "
                          "and write your files and use the network", RuntimeWarning, stacklevel=2)
        workdir = tempfile.mkdtemp(prefix="selfgym-sandbox-")
        env = child_env(workdir)
        config = worker_config(self.config, workdir=workdir, scratch=[], pidns=False, uid=None, warm=warm, env=env)
        argv, payload = worker_launch(self.python, config)
        transport = _ProcessTransport(argv, env={**env, **WORKER_ENV}, workdir=workdir)
        transport.boot(payload)
        return transport
