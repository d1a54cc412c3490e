"""One writer per run: a lease that a live process holds on ``<run_dir>/<run_id>.lease``.

``selfgym train`` (and ``selfgym ablate`` for its whole folder) takes the lease before it opens the
run for writing and keeps it until it returns. A second writer of the same run directory and run id
fails at once with ``RunLockedError``, whose message names the holder (pid, host, since when, its
command line) and what to do. The lease is a POSIX record lock (``fcntl.lockf``) on the lease file,
so the kernel drops it when the holder's process ends, however it ends: after a ``kill -9`` the next
``--resume`` takes the run over with nothing to clean up. The file itself stays; it only holds the
last holder's details.

Why ``lockf`` and not ``flock``: a POSIX lock is not inherited by ``fork`` children (a forked
sandbox or data-loader worker that outlives a killed holder cannot keep the run locked), and on NFS
it is the lock the server arbitrates between machines, where ``flock`` may be local to one client
(``local_lock=flock``). Within one process POSIX locks do not conflict, so a registry here refuses
a second lease on the same file in the same process.

Readers (``selfgym report``, ``export``, ``eval --memory-run``, a viewer) never take the lease and
are never blocked by it. Workers that write trajectories for a driver (threads, Ray tasks on the
same machine) write under the driver's lease; the store's unique attempt index refuses a duplicate
whoever writes it. See docs/decisions.md ("One writer per run") for what is safe on NFS.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from selfgym.errors import RunLockedError

__all__ = ["LEASE_SUFFIX", "Holder", "RunLease"]

LEASE_SUFFIX = ".lease"

_held: set[str] = set()  # lease files this process holds (POSIX locks never conflict within a process)
_held_lock = threading.Lock()


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: written into the lease file by the holder when it takes it."""

    pid: int
    host: str
    since: float
    command: str

    @classmethod
    def me(cls) -> Holder:
        return cls(pid=os.getpid(), host=socket.gethostname(), since=time.time(),
                   command=shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "")

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since))
        return f"pid {self.pid} on host {self.host} since {since} ({self.command})"


class RunLease:
    """The write lease of one run (run directory and run id).

    Args:
        run_dir: the run directory (created if missing); the lease file is ``<run_dir>/<run_id>.lease``.
        run_id: the run's id (a directory may hold several runs, each with its own lease).
        what: how the refusal message names the run (e.g. ``run 'x'`` or ``ablation 'x'``).

    Use as a context manager, or ``acquire()`` / ``release()``.
    """

    def __init__(self, run_dir: str | Path, run_id: str, *, what: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.run_id = run_id
        self.what = what or f"run {run_id!r}"
        self.path = self.run_dir / (run_id.replace(os.sep, "_") + LEASE_SUFFIX)
        self._fd: int | None = None
        self.holder: Holder | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLease:
        """Take the lease now, or fail at once.

        Raises:
            RunLockedError: another live process (or another lease in this process) holds it.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        key = str(self.path.resolve())
        with _held_lock:
            if key in _held:
                raise RunLockedError(f"{self.what} in {self.run_dir} is already being written by this process "
                                     f"(pid {os.getpid()}); one writer per run")
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                text = _read(fd)
                os.close(fd)
                raise RunLockedError(self._refusal(text)) from None
            _held.add(key)
        self._fd, self.holder = fd, Holder.me()
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(asdict(self.holder)) + "\n").encode(), 0)
        os.fsync(fd)  # a contender on another NFS client reads the holder after open()
        return self

    def _refusal(self, text: str) -> str:
        try:
            holder = Holder(**json.loads(text))
        except (ValueError, TypeError):
            holder = None
        who = holder.describe() if holder else "another process (it has not written its details yet)"
        stop = f"stop it (kill {holder.pid} on {holder.host})" if holder else "stop it"
        return (f"{self.what} in {self.run_dir} is being written by {who}; one process writes a run at a time: "
                f"wait for it to finish, or {stop} and continue with --resume "
                f"(reading the run needs no lease: selfgym report, export)")

    def release(self) -> None:
        """Give the lease back (closing the file drops the lock; the file stays)."""
        if self._fd is None:
            return
        with _held_lock:
            _held.discard(str(self.path.resolve()))
            os.close(self._fd)  # the lock goes with the last descriptor this process has on the file
            self._fd = None

    def __enter__(self) -> RunLease:
        return self.acquire()

    def __exit__(self, *_: Any) -> None:
        self.release()


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode(errors="replace").strip()
    except OSError:
        return ""
