"""The warm pool: pre-started sandbox workers that answer an exec in about a millisecond.

Each worker is one sandbox (a bwrap namespace, a container, or a plain process) running the fork
server of ``worker.py``. The pool hands a request to an idle worker; the worker forks a fresh child
for it, so requests never see each other's processes or files. Workers are replaced after
``max_uses`` execs or on any anomaly (no answer, a process that escaped the cleanup, a protocol
error); a worker that died is replaced transparently and the request retried once on a fresh one.
"""

from __future__ import annotations

import base64
import json
import os
import random
import select
import signal
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from selfgym.errors import SandboxError
from selfgym.types import ExecResult

from .sandbox import Backend, SandboxConfig, Transport

__all__ = [
    "PipeTransport",
    "PooledSandbox",
    "WORKER_ENV",
    "Transport",
    "WorkerHandle",
    "child_env",
    "encode_request",
    "sandbox_uid",
    "worker_config",
    "worker_launch",
    "worker_source",
]

HEADER = struct.Struct(">I")
READ_AHEAD = 65536
CHILD_PATH = "/usr/local/bin:/usr/bin:/bin"
GRACE_S = 5.0  # how much longer than the exec's own limit the host waits for the worker's answer
# The worker's interpreter starts with these on top of the children's environment (which
# ``worker.main`` restores before any child runs): bind every symbol at start, so that a forked child
# never writes the dynamic linker's tables (a copy-on-write fault per page) to resolve one.
WORKER_ENV = {"LD_BIND_NOW": "1"}


# The interpreter inside the sandbox runs this one-liner; it reads the fork server's source and its
# configuration from stdin (kept off the command line, where `ps` would show ~30 kB of code).
BOOTSTRAP = ("import sys, json; boot = json.loads(sys.stdin.buffer.read(int(sys.argv[1]))); "
             "sys.argv[1:] = [json.dumps(boot['config'])]; exec(boot['source'])")
PYTHON_FLAGS = ("-I", "-S", "-B", "-X", "utf8")


@cache
def worker_source() -> str:
    """The fork server's source (``worker.py``)."""
    return (Path(__file__).with_name("worker.py")).read_text(encoding="utf-8")


def worker_launch(python: str, config: dict[str, Any]) -> tuple[list[str], bytes]:
    """The command that starts a fork server under ``python``, and the bytes to send to its stdin."""
    payload = json.dumps({"source": worker_source(), "config": config}).encode()
    return [python, *PYTHON_FLAGS, "-c", BOOTSTRAP, str(len(payload))], payload


def sandbox_uid() -> int:
    """A fresh unprivileged uid per worker, so that ``RLIMIT_NPROC`` counts one worker's children only."""
    return random.randrange(200_000, 2_000_000_000)


def count_own_processes() -> int:
    """Processes of this uid on the host (``RLIMIT_NPROC`` counts them when we cannot switch uid)."""
    uid, count = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                continue
    return count


def worker_config(config: SandboxConfig, *, workdir: str, scratch: list[str], pidns: bool, uid: int | None,
                  warm: bool, env: dict[str, str]) -> dict[str, Any]:
    """The JSON the fork server reads from its argv (see ``worker.Worker``)."""
    return {
        "workdir": workdir, "scratch": scratch, "pidns": pidns, "uid": uid, "gid": uid,
        "nproc_base": None if uid is not None else count_own_processes(),
        "max_output_bytes": config.max_output_bytes, "max_procs": config.max_procs,
        "max_file_mb": config.max_file_mb, "env": env, "preload": list(config.preload) if warm else [],
        "modules": dict(config.modules) if warm else {},
    }


def child_env(home: str) -> dict[str, str]:
    return {"PATH": CHILD_PATH, "HOME": home, "LANG": "C.UTF-8", "TMPDIR": "/tmp", "PYTHONIOENCODING": "utf-8",
            "PYTHONDONTWRITEBYTECODE": "1"}


class PipeTransport:
    """A worker started as a local subprocess (bwrap or plain python), spoken to over its stdin/stdout."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> None:
        self._stderr = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._stderr, env=dict(env) if env is not None else None,
                                         start_new_session=True)
        except OSError as exc:
            self._stderr.close()
            raise SandboxError(f"cannot start {argv[0]!r}: {exc}") from exc
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in, self._out = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        self._buffer = bytearray()  # read ahead: a reply's header and body usually come in one read

    def send(self, data: bytes) -> None:
        try:
            while data:
                data = data[os.write(self._in, data):]
        except (BrokenPipeError, OSError) as exc:
            raise EOFError(f"worker stdin closed: {exc}") from exc

    def boot(self, payload: bytes) -> None:
        """Send the fork server its source and configuration (``SandboxError`` if it died already)."""
        try:
            self.send(payload)
        except EOFError as exc:
            self.kill()
            raise SandboxError(f"sandbox worker exited at start: {self.diagnostics() or exc}") from exc

    def recv(self, size: int, deadline: float) -> bytes:
        while len(self._buffer) < size:
            timeout = deadline - time.monotonic()
            if timeout <= 0 or not select.select([self._out], [], [], timeout)[0]:
                raise TimeoutError("worker did not answer in time")
            chunk = os.read(self._out, max(size - len(self._buffer), READ_AHEAD))
            if not chunk:
                raise EOFError("worker exited")
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self._stderr.close()

    def diagnostics(self) -> str:
        try:
            self._stderr.seek(0)
            return self._stderr.read()[-2000:].decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""


class WorkerHandle:
    """The host's side of one worker: starts it, waits for its hello, sends requests."""

    def __init__(self, transport: Transport, *, startup_timeout_s: float) -> None:
        self.transport = transport
        self.uses = 0
        self.ready = False
        self.on_close: Callable[[WorkerHandle], None] | None = None
        self._startup_deadline = time.monotonic() + startup_timeout_s

    def wait_ready(self) -> None:
        if self.ready:
            return
        try:
            hello = self._read(self._startup_deadline)
        except (EOFError, TimeoutError, OSError, ValueError) as exc:
            detail = self.transport.diagnostics()
            raise SandboxError(f"sandbox worker failed to start ({exc})" + (f": {detail}" if detail else "")) from exc
        if not hello.get("ready"):
            raise SandboxError(f"sandbox worker sent an unexpected hello: {hello!r}")
        self.ready = True

    def request(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        body = json.dumps(message).encode()
        self.transport.send(HEADER.pack(len(body)) + body)
        self.uses += 1
        return self._read(time.monotonic() + timeout_s)

    def _read(self, deadline: float) -> dict[str, Any]:
        (size,) = HEADER.unpack(self.transport.recv(HEADER.size, deadline))
        return json.loads(self.transport.recv(size, deadline))

    def close(self) -> None:
        self.transport.kill()
        if self.on_close is not None:
            self.on_close(self)


def encode_request(
    code: str | Sequence[str], *, stdin: str | bytes | None, files: Mapping[str, str | bytes] | None,
    timeout_s: float, memory_mb: int, env: Mapping[str, str] | None,
) -> dict[str, Any]:
    """The JSON message ``worker.py`` expects for one exec (validates ``files`` paths)."""
    message: dict[str, Any] = {"timeout_s": float(timeout_s), "memory_mb": int(memory_mb)}
    if isinstance(code, str):
        message["code"] = code
    else:
        argv = [str(part) for part in code]
        if not argv:
            raise ValueError("exec: an empty command")
        message["argv"] = argv
    if isinstance(stdin, bytes):
        message.update(stdin=base64.b64encode(stdin).decode(), stdin_b64=True)
    elif stdin is not None:
        message["stdin"] = stdin
    encoded = {}
    for path, content in (files or {}).items():
        parts = Path(path).parts
        if not parts or Path(path).is_absolute() or ".." in parts:
            raise ValueError(f"exec: file path {path!r} must be relative and stay inside the work directory")
        encoded[path] = ({"b64": base64.b64encode(content).decode()} if isinstance(content, bytes)
                         else {"text": content})
    message["files"] = encoded
    if env:
        message["env"] = dict(env)
    return message


class PooledSandbox:
    """A ``Sandbox`` over any backend, with ``config.pool_size`` warm workers (0: cold, one per exec)."""

    def __init__(self, backend: Backend, config: SandboxConfig) -> None:
        self.backend = backend
        self.config = config
        self.name = backend.name
        self.isolated = backend.isolated
        self.closed = False
        self._pid = os.getpid()  # workers belong to this process; a fork must start its own
        # Modules every warm worker has imported already (cold workers preload nothing).
        self.preloaded = frozenset(name for name, _ in config.modules) if config.pool_size else frozenset()
        self._idle: list[WorkerHandle] = []
        self._handles: set[WorkerHandle] = set()  # every started worker, idle or busy
        self._live = 0
        self._cond = threading.Condition()
        self.stats = {"execs": 0, "spawned": 0, "recycled": 0, "retried": 0}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the warm workers and check that one answers (raises ``SandboxError`` if not)."""
        with self._cond:
            while self._live < self.config.pool_size:
                self._idle.append(self._spawn(warm=True))
                self._live += 1
        result = self.exec("print('ok')", timeout_s=max(self.config.timeout_s, 5.0))
        if result.stdout != "ok\n":
            self.close()
            raise SandboxError(f"{self.name} sandbox self-check failed: exit {result.exit_code}, "
                               f"stdout {result.stdout[:200]!r}, stderr {result.stderr[-500:]!r}")

    def close(self) -> None:
        if os.getpid() != self._pid:  # a forked copy: the workers are the parent's, leave them be
            self.closed = True
            return
        with self._cond:
            self.closed = True
            idle, self._idle = self._idle, []
            self._live -= len(idle)
            self._cond.notify_all()
        for worker in idle:
            worker.close()

    def __enter__(self) -> PooledSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PooledSandbox(backend={self.name!r}, pool_size={self.config.pool_size}, isolated={self.isolated})"

    # ------------------------------------------------------------------ exec
    def exec(
        self,
        code: str | Sequence[str],
        *,
        stdin: str | bytes | None = None,
        files: Mapping[str, str | bytes] | None = None,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        """Run ``code`` (Python source, or an argv list) in a fresh child of a warm worker."""
        if self.closed:
            raise SandboxError(f"{self.name} sandbox is closed")
        if os.getpid() != self._pid:
            raise SandboxError(f"{self.name} sandbox was started by process {self._pid}; a forked process "
                               "must make its own (shared_sandbox() does so per process)")
        timeout_s = float(timeout_s if timeout_s is not None else self.config.timeout_s)
        memory_mb = int(memory_mb if memory_mb is not None else self.config.memory_mb)
        message = encode_request(code, stdin=stdin, files=files, timeout_s=timeout_s, memory_mb=memory_mb, env=env)
        for attempt in (1, 2):
            worker = self._acquire()
            try:
                worker.wait_ready()
                reply = worker.request(message, timeout_s + GRACE_S)
            except TimeoutError as exc:  # before OSError, its base class
                self._release(worker, keep=False)
                raise SandboxError(f"{self.name} sandbox worker did not answer within {timeout_s + GRACE_S:.1f}s") from exc
            except (EOFError, OSError, ValueError, SandboxError) as exc:
                detail = worker.transport.diagnostics()
                self._release(worker, keep=False)
                if attempt == 1:
                    self.stats["retried"] += 1
                    continue
                raise SandboxError(f"{self.name} sandbox worker failed twice ({exc})"
                                   + (f": {detail}" if detail else "")) from exc
            if "error" in reply:
                self._release(worker, keep=False)
                raise SandboxError(f"{self.name} sandbox worker error:\n{reply['error']}")
            self._release(worker, keep=bool(reply.pop("clean", False)))
            self.stats["execs"] += 1
            return ExecResult(**reply)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ pool
    def worker_pids(self) -> list[int]:
        """Host pids of the running workers (bwrap or python processes; empty for containers)."""
        procs = [getattr(handle.transport, "proc", None) for handle in list(self._handles)]
        return [proc.pid for proc in procs if proc is not None and proc.poll() is None]

    def _spawn(self, *, warm: bool) -> WorkerHandle:
        self.stats["spawned"] += 1
        handle = WorkerHandle(self.backend.spawn(warm=warm), startup_timeout_s=self.config.startup_timeout_s)
        handle.on_close = self._handles.discard
        self._handles.add(handle)
        return handle

    def _acquire(self) -> WorkerHandle:
        if self.config.pool_size == 0:
            return self._spawn(warm=False)
        with self._cond:
            while True:
                if self.closed:
                    raise SandboxError(f"{self.name} sandbox is closed")
                while self._idle:
                    worker = self._idle.pop(0)  # least recently used: its next spare is forked by now
                    if worker.transport.alive():
                        return worker
                    worker.close()  # died while idle: replaced below
                    self._live -= 1
                if self._live < self.config.pool_size:
                    self._live += 1
                    break
                self._cond.wait()
        try:
            return self._spawn(warm=True)
        except BaseException:
            with self._cond:
                self._live -= 1
                self._cond.notify()
            raise

    def _release(self, worker: WorkerHandle, *, keep: bool) -> None:
        if self.config.pool_size == 0:
            worker.close()
            return
        keep = keep and worker.uses < self.config.max_uses and worker.transport.alive()
        replacement = None
        if not keep:
            worker.close()
            self.stats["recycled"] += 1
            if not self.closed:
                try:
                    replacement = self._spawn(warm=True)  # starts now, warm by the next request
                except SandboxError:
                    replacement = None
        with self._cond:
            if self.closed:
                for handle in (worker if keep else None, replacement):
                    if handle is not None:
                        handle.close()
                self._live -= 1
            elif keep:
                self._idle.append(worker)
            elif replacement is not None:
                self._idle.append(replacement)
            else:
                self._live -= 1
            self._cond.notify()
