"""The sandbox worker: a fork server that runs *inside* the sandbox.

Started once per sandbox by ``pool.BOOTSTRAP``, which reads this source and its configuration
from stdin and runs it with the configuration in ``sys.argv[1]``. It is two processes:

- the *zygote* (the process started) only forks children and reaps them. It does next to
  nothing between forks, so a fork leaves it almost no pages to copy on write;
- the *server*, forked from it once, reads length-prefixed JSON requests on stdin and answers on
  stdout. It shares no pages with the children (it is not their parent's memory), so handling a
  request costs it no copy-on-write faults.

The server always keeps one *spare* child ordered ahead of time (the fork is then off the hot
path): the spare has started a new session, set its static limits and a fresh ``__main__``, and
waits for its go line. A request writes the program's files into the work directory and sends the
go line; the spare sets the time and memory limits, drops to the unprivileged sandbox uid and runs
the program, while the server feeds stdin and collects stdout/stderr until the child exits or the
deadline passes. Then every process the child left behind is killed and the scratch directories
are wiped: nothing leaks between requests.

Standard library only, Python >= 3.9: this file runs under the interpreter inside the sandbox,
which may not be the host's.
"""

from __future__ import annotations

import atexit
import base64
import builtins
import gc
import json
import os
import resource
import select
import shutil
import signal
import socket
import struct
import sys
import time
import traceback
import types

HEADER = struct.Struct(">I")
MIB = 1024 * 1024
READ_SIZE = 65536
SPARE_TIMEOUT_S = 60.0


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_line(fd: int) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data


def _recv(fd: int) -> dict | None:
    header = _read_exactly(fd, HEADER.size)
    if header is None:
        return None
    body = _read_exactly(fd, HEADER.unpack(header)[0])
    return None if body is None else json.loads(body)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _send(fd: int, message: dict) -> None:
    body = json.dumps(message).encode()
    _write_all(fd, HEADER.pack(len(body)) + body)


class Spare:
    """A child forked ahead of time (by the zygote) and the server's ends of its pipes."""

    def __init__(self, pid: int, control: int, stdin_w: int, out_r: int, err_r: int, status_r: int) -> None:
        self.pid, self.control, self.out_r, self.err_r = pid, control, out_r, err_r
        self.stdin_w: int | None = stdin_w
        self.status_r: int | None = status_r
        try:
            self.pidfd: int | None = os.pidfd_open(pid)  # readable once the child has exited
        except (AttributeError, OSError):
            self.pidfd = None  # old kernel: ask the zygote every few milliseconds instead

    def close(self) -> None:
        for fd in (self.control, self.stdin_w, self.pidfd, self.status_r):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass


class Worker:
    """Serves exec requests; ``config`` comes from the host (see ``pool.worker_config``)."""

    def __init__(self, config: dict) -> None:
        self.workdir = config["workdir"]
        self.scratch = [self.workdir] + list(config.get("scratch", []))
        self.uid: int | None = config.get("uid")
        self.gid: int = config.get("gid", self.uid) if self.uid is not None else -1
        self.pidns = bool(config.get("pidns"))
        self.max_output = int(config.get("max_output_bytes", 65536))
        self.max_procs = int(config.get("max_procs", 32))
        self.nproc_base = config.get("nproc_base")
        self.max_file_mb = int(config.get("max_file_mb", 16))
        os.makedirs(self.workdir, exist_ok=True)
        self._reset_workdir()

    def serve(self, proto_in: int, proto_out: int, zygote: socket.socket) -> None:
        """Answer requests until the host closes the pipe (the server process)."""
        self.zygote = zygote
        self._order_spare(0)
        spare: Spare | None = self._take_spare()
        _send(proto_out, {"ready": True, "pid": os.getpid(), "uid": os.getuid(), "python": sys.version.split()[0]})
        while True:
            request = _recv(proto_in)
            if request is None:
                return  # the zygote sees its socket close, kills the spare and exits
            if spare is None:
                spare = self._take_spare()  # ordered after the last answer; ready by now, as a rule
            try:
                response = self._run(spare, request)
            except Exception:  # noqa: BLE001 - reported to the host, which recycles this worker
                _kill_group(spare.pid)
                spare.close()
                response = {"error": traceback.format_exc(limit=6)}
            _send(proto_out, response)
            # Cleaning up after the answer keeps it off the answer's path, and it is done before
            # the next request is read. The next spare is ordered only once every process of this
            # request is dead (without a sandbox uid the cleanup kills every process but the
            # zygote and this server, a waiting spare too); it starts while the work dirs are wiped
            # and the host sends the next request.
            self._kill_leftovers(spare)
            self._order_spare(spare.pid)
            spare = None
            if not self._wipe():
                sys.stderr.write("sandbox worker: a scratch file could not be removed; exiting for a fresh worker\n")
                return  # the host finds this worker gone and retries the request on a fresh one

    # ------------------------------------------------------------------ server side
    def _order_spare(self, reap: int) -> None:
        """Ask the zygote for a new spare (and to reap the finished one, 0 for none)."""
        self.zygote.send(b"f %d" % reap)

    def _take_spare(self) -> Spare:
        """The ordered spare's pid and this server's ends of its pipes, which the spare sends itself."""
        if not select.select([self.zygote], [], [], SPARE_TIMEOUT_S)[0]:
            raise RuntimeError(f"no spare child reported within {SPARE_TIMEOUT_S:.0f}s")
        message, fds, _, _ = socket.recv_fds(self.zygote, 64, 5)
        if not message or len(fds) != 5:
            raise RuntimeError(f"the sandbox's zygote or spare failed ({message!r}, {len(fds)} fds)")
        return Spare(int(message), *fds)

    def _wait(self, pid: int, block: bool = True) -> int | None:
        """The wait status of the (exited or killed) spare ``pid``, from the zygote that reaps it;
        ``None`` if it still runs (``block=False`` only)."""
        self.zygote.send(b"%s %d" % (b"w" if block else b"p", pid))
        reply = self.zygote.recv(64)
        if not reply:
            raise RuntimeError("the sandbox's zygote process exited")
        return None if reply == b"-" else int(reply)

    def _run(self, spare: Spare, request: dict) -> dict:
        """Write the files, start the spare on ``request``, collect its result."""
        self._write_files(request)
        # The go line: "<timeout> <memory> [json of the rarer fields]" (no json work in the common case).
        extra = {key: request[key] for key in ("argv", "env", "filename") if request.get(key)}
        go = b"%r %d %s\n" % (float(request["timeout_s"]), int(request["memory_mb"]),
                               json.dumps(extra).encode() if extra else b"")
        start = time.monotonic()
        try:
            _write_all(spare.control, go)
        except BrokenPipeError:
            pass  # the spare died; its exit status is reported below
        stdin = request.get("stdin") or ""
        data = base64.b64decode(stdin) if request.get("stdin_b64") else stdin.encode()
        result = self._collect(spare, data, start, float(request["timeout_s"]))
        spare.close()
        return result

    def _write_files(self, request: dict) -> None:
        files = dict(request.get("files") or {})
        if request.get("code") is not None:
            files[request.get("filename") or "main.py"] = {"text": request["code"]}
        root = self.workdir
        for rel, spec in files.items():
            # normpath, not realpath: the work dir was just wiped and nothing is left running that
            # could have planted a symlink, so lexical containment is enough (and much cheaper).
            path = os.path.normpath(os.path.join(root, rel))
            if not path.startswith(root + os.sep):
                raise ValueError(f"file path {rel!r} leaves the work directory")
            parent = os.path.dirname(path)
            if parent != root:
                os.makedirs(parent, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)  # raw fds: no io stack to touch
            try:
                _write_all(fd, base64.b64decode(spec["b64"]) if "b64" in spec else spec["text"].encode())
            finally:
                os.close(fd)
            if self.uid is not None:
                while path != root:
                    os.chown(path, self.uid, self.gid)
                    path = os.path.dirname(path)

    def _collect(self, spare: Spare, stdin: bytes, start: float, timeout_s: float) -> dict:
        """Feed stdin, read output until the child exits or the deadline, then kill what is left."""
        pipes = {spare.out_r: bytearray(), spare.err_r: bytearray()}
        output = dict(pipes)
        stdin_view = memoryview(stdin)
        writers: list[int] = [spare.stdin_w] if spare.stdin_w is not None else []
        deadline = start + timeout_s
        status: int | None = None
        reported: int | None = None
        timed_out, truncated = False, False
        exited = False
        while status is None and reported is None:
            if not stdin_view and writers and spare.stdin_w is not None:
                os.close(spare.stdin_w)
                spare.stdin_w, writers = None, []
            left = deadline - time.monotonic()
            if exited:  # without announcing its exit code: killed by a signal, or an exec'd command
                status = self._wait(spare.pid)
            elif left <= 0:
                timed_out = True
                _kill_group(spare.pid)
                status = self._wait(spare.pid)
            else:
                if spare.pidfd is None:  # no pidfd to watch: ask the zygote, then sleep a little
                    status = self._wait(spare.pid, block=False)
                    if status is not None:
                        break
                watch = [*pipes, *(fd for fd in (spare.status_r, spare.pidfd) if fd is not None)]
                wait = left if spare.pidfd is not None else min(left, 0.002)
                readable, writable, _ = select.select(watch, writers, [], wait)
                if writable:
                    try:
                        stdin_view = stdin_view[os.write(writers[0], stdin_view[:READ_SIZE]):]
                    except BrokenPipeError:
                        stdin_view = memoryview(b"")  # the program stopped reading stdin
                if spare.status_r in readable:
                    reported = _read_status(spare)
                exited = spare.pidfd in readable
                truncated = self._drain(readable, pipes) or truncated
        duration = time.monotonic() - start
        while pipes:  # what the child wrote before it exited
            ready = select.select(list(pipes), [], [], 0)[0]
            if not ready:
                break
            truncated = self._drain(ready, pipes) or truncated
        if pipes:  # something the child left behind still holds the output open: kill it first
            self._kill_leftovers(spare)
        drain_until = time.monotonic() + 0.5
        while pipes and time.monotonic() < drain_until:
            truncated = self._drain(select.select(list(pipes), [], [], 0.05)[0], pipes) or truncated
        escaped = bool(pipes)  # a process outside our reach still holds the pipe open
        for fd in pipes:
            os.close(fd)
        if status is not None:
            sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
            reported = -sig if sig is not None else os.WEXITSTATUS(status)
        result = _result(reported if reported is not None else -1, bytes(output[spare.out_r]),
                         bytes(output[spare.err_r]), duration, timed_out, truncated)
        result["clean"] = not escaped
        return result

    def _kill_leftovers(self, spare: Spare) -> None:
        """Kill the spare's process group and, in a pid namespace, whatever else a program left.

        Processes a program started may leave its group (``setsid``); in a pid namespace they are
        found all the same. Under a sandbox uid, ``kill(-1)`` as that uid reaches exactly its
        processes in one atomic sweep, and the zygote, this server and the namespace's init (root)
        stay; the saved uid stays 0, which is how this process gets root back. Without one, every
        process shares this uid, so they are listed and killed one by one.
        """
        _kill_group(spare.pid)
        if not self.pidns:
            return
        if self.uid is None:
            _kill_others({1, os.getpid(), os.getppid()})
            return
        os.setresuid(self.uid, self.uid, 0)
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass  # nothing left to kill
        finally:
            os.setresuid(0, 0, 0)

    def _drain(self, ready: list, pipes: dict) -> bool:
        """Read what is ready; forget pipes at EOF. True if output was cut at ``max_output``."""
        truncated = False
        for fd in ready:
            if fd not in pipes:
                continue
            chunk = os.read(fd, READ_SIZE)
            if not chunk:
                os.close(fd)
                del pipes[fd]
                continue
            buffer = pipes[fd]
            room = max(self.max_output - len(buffer), 0)
            buffer += chunk[:room]
            truncated = truncated or len(chunk) > room
        return truncated

    def _wipe(self) -> bool:
        clean = True
        for directory in self.scratch:
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
                except OSError:
                    clean = False
        return self._reset_workdir() and clean

    def _reset_workdir(self) -> bool:
        try:
            os.chmod(self.workdir, 0o755)
            if self.uid is not None:
                os.chown(self.workdir, self.uid, self.gid)
            return True
        except OSError:
            return False

    # ------------------------------------------------------------------ child side
    def _spare(self, server: socket.socket) -> None:
        """The spare child: get ready, wait for the go message, become the program. Never returns.

        It makes its own pipes (control, stdin, stdout, stderr, exit status) and sends the server
        its ends with its pid, so the zygote's loop touches no fds (each of its writes after a fork
        is a copy-on-write fault). The zygote keeps fds 0-4 taken, so every new fd here is >= 5.
        """
        try:
            os.setsid()
            pipes = [os.pipe() for _ in range(5)]
            socket.send_fds(server, [b"%d" % os.getpid()],
                            [pipes[0][1], pipes[1][1], pipes[2][0], pipes[3][0], pipes[4][0]])
            control, stdin_r, out_w, err_w, status_w = pipes[0][0], pipes[1][0], pipes[2][1], pipes[3][1], pipes[4][1]
            os.dup2(control, 3)
            os.dup2(stdin_r, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.dup2(status_w, 4, inheritable=False)  # not passed on to commands the program runs
            os.closerange(5, 65536)
            os.chdir(self.workdir)
            self._static_limits()
            main = _fresh_main()
            _warm_up(self.workdir)
            line = _read_line(3)
            os.close(3)
            if not line:
                os._exit(0)
            timeout_s, memory_mb, go = _parse_go(line)
            cpu = int(time.process_time() + timeout_s) + 1
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
            resource.setrlimit(resource.RLIMIT_AS, (memory_mb * MIB, memory_mb * MIB))
            if self.uid is not None:  # only now: a waiting spare is not counted as a sandbox process
                os.setgroups([])
                os.setgid(self.gid)
                os.setuid(self.uid)
            os.environ.update(go.get("env") or {})
            if go.get("argv"):
                for name in ("SIGPIPE", "SIGXFSZ"):  # Python ignores them; a command expects the default
                    signal.signal(getattr(signal, name), signal.SIG_DFL)
                os.execvp(go["argv"][0], go["argv"])
            _run_main(main, os.path.join(self.workdir, go.get("filename") or "main.py"))
        except BaseException:  # noqa: BLE001 - the child must never return into the server loop
            try:
                traceback.print_exc()
                sys.stderr.flush()
            finally:
                os._exit(127)

    def _static_limits(self) -> None:
        nproc = self.max_procs if self.nproc_base is None else self.nproc_base + self.max_procs
        limits = [
            (resource.RLIMIT_FSIZE, (self.max_file_mb * MIB, self.max_file_mb * MIB)),
            (resource.RLIMIT_NOFILE, (256, 256)),
            (resource.RLIMIT_CORE, (0, 0)),
        ]
        if self.uid is not None or self.nproc_base is not None:
            limits.append((resource.RLIMIT_NPROC, (nproc, nproc)))
        for which, value in limits:
            resource.setrlimit(which, value)


def _read_status(spare: Spare) -> int | None:
    """The exit code the child announced on its status pipe, if it did (else we wait for its exit)."""
    assert spare.status_r is not None
    data = os.read(spare.status_r, 64)
    os.close(spare.status_r)
    spare.status_r = None
    try:
        return int(data.strip()) if data.endswith(b"\n") else None
    except ValueError:
        return None  # the program wrote to the status fd itself: ignore it, wait for the exit


def _result(exit_code: int, out: bytes, err: bytes, duration: float, timed_out: bool, truncated: bool) -> dict:
    sig = -exit_code if exit_code < 0 else None
    stderr = err.decode("utf-8", "replace")
    last = stderr.rstrip().rsplit("\n", 1)[-1] if stderr.strip() else ""
    timed_out = timed_out or sig == signal.SIGXCPU
    oom = (exit_code == 1 and last.startswith("MemoryError")) or (sig == signal.SIGKILL and not timed_out)
    return {
        "stdout": out.decode("utf-8", "replace"), "stderr": stderr, "exit_code": exit_code, "signal": sig,
        "timed_out": timed_out, "oom": oom, "duration_s": duration, "truncated_output": truncated,
    }


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _kill_others(keep: set) -> None:
    """Kill every live process of this pid namespace but ``keep``, pass after pass until none is left."""
    for _ in range(1000):
        alive = []
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) not in keep:
                try:
                    with open(f"/proc/{name}/stat", "rb") as fh:
                        state = fh.read().rsplit(b")", 1)[1].split()[0]
                except (OSError, IndexError):
                    continue
                if state not in (b"Z", b"X"):  # zombies wait for the namespace's init to reap them
                    alive.append(int(name))
        if not alive:
            return
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _zygote(worker: Worker, sock: socket.socket) -> None:
    """The zygote's loop: fork a spare per order, reap, answer wait queries. Never returns.

    Orders from the server (one datagram each): ``f <pid>``: fork a spare (which reports to the
    server itself), then reap ``<pid>``, the spare the server is done with (0 for none; it has
    exited or been killed). ``w <pid>`` / ``p <pid>``: answer the wait status of an exited spare,
    waiting for it (``w``) or ``-`` if it still runs (``p``). What a program leaves behind is not
    the zygote's child: orphans go to the namespace's init, which reaps them at once. Deliberately
    small: each of the zygote's writes after a fork costs a copy-on-write fault.
    """
    statuses: dict[int, int | None] = {}  # spares not yet let go -> their wait status once reaped
    while True:
        try:
            message = sock.recv(64)
        except OSError:
            message = b""
        if not message:  # the server exited
            for pid in statuses:
                _kill_group(pid)
            os._exit(0)
        op, pid = message[:1], int(message[2:])
        if op == b"f":
            _sweep(statuses)
            child = os.fork()
            if child == 0:
                worker._spare(sock)  # never returns
            statuses[child] = None
            if pid and statuses.pop(pid, None) is None:
                _reap(statuses, pid, 0)
            continue
        status = statuses.get(pid)
        if status is None:
            status = _reap(statuses, pid, 0 if op == b"w" else os.WNOHANG)
        sock.send(b"-" if status is None else b"%d" % status)


def _reap(statuses: dict, pid: int, flags: int) -> int | None:
    """Wait for spare ``pid`` (``None``: it still runs, with ``WNOHANG``)."""
    try:
        done, status = os.waitpid(pid, flags)
    except ChildProcessError:  # cannot happen: reported as an unknown exit
        return -1
    if done:
        statuses[pid] = status
    return status if done else None


def _sweep(statuses: dict) -> None:
    """Reap the spares that exited (their status kept until the server lets them go)."""
    while True:
        try:
            done, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not done:
            return
        if done in statuses:
            statuses[done] = status


WARM_UP = compile("values = [i * 2 for i in range(8)]\ntext = {'key': str(values)}\n", "<warm-up>", "exec")


def _warm_up(workdir: str) -> None:
    """Run the interpreter's common paths once in the waiting spare, off the hot path.

    The spare shares its memory with the zygote copy-on-write: the first write to each page costs
    a fault and a page copy. Compiling and running a small program, and the calls the go line
    makes (with a sample line), take most of those faults now, while the model thinks, instead of
    after the go line. Nothing here is visible to the program: a throwaway namespace, no output,
    no imports.
    """
    exec(compile("values = [i for i in range(8)]\n", "<warm-up>", "exec"), {"__builtins__": builtins})
    exec(WARM_UP, {"__builtins__": builtins})
    sys.stdout.write("")
    sys.stderr.write("")
    sys.stdout.flush()
    sys.stderr.flush()
    _, _, go = _parse_go(b'1.0 256 {"env": {}}\n')
    path = os.path.join(workdir, go.get("filename") or "main.py")
    _read_source(os.devnull), os.path.dirname(path), "threading" in sys.modules
    time.process_time(), time.monotonic()
    resource.getrlimit(resource.RLIMIT_CPU)
    os.environ.update(go.get("env") or {})


def _parse_go(line: bytes) -> tuple[float, int, dict]:
    """The go line: ``<timeout> <memory> [json of the rarer fields]`` (no json in the common case)."""
    timeout, memory, extra = (line.split(b" ", 2) + [b""])[:3]
    return float(timeout), int(memory), (json.loads(extra) if extra.strip() else {})


def _read_source(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return b"".join(iter(lambda: os.read(fd, READ_SIZE), b""))
    finally:
        os.close(fd)


def _fresh_main() -> types.ModuleType:
    """A new ``__main__`` module (set up before the request, off the hot path).

    The standard streams are the server's own ``sys.stdin/stdout/stderr`` objects: they wrap fds
    0-2, which now are the child's pipes, and the server never used them, so their buffers are empty.
    """
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main
    return main


def _exit_status(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def _run_main(main: types.ModuleType, path: str) -> None:
    """Run the file at ``path`` as ``__main__`` (like ``python path``), then exit the process."""
    sys.argv = [path]
    sys.path.insert(0, os.path.dirname(path))
    main.__file__ = path
    status = 0
    try:
        exec(compile(_read_source(path), path, "exec"), main.__dict__)
    except SystemExit as exc:
        status = _exit_status(exc)
    except BaseException as exc:  # noqa: BLE001 - printed like the interpreter would
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == "<string>":
            tb = tb.tb_next  # hide this server's own frames
        traceback.print_exception(type(exc), exc, tb)
        status = 1
    try:
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001 - a broken stdout at exit is the program's problem
        status = status or 120
    # Close the output pipes and announce the exit code first: the kernel closes files only after
    # tearing down the address space, and the server need not wait for that.
    for fd in (0, 1, 2):
        os.close(fd)
    try:
        os.write(4, b"%d\n" % status)
    except OSError:
        pass
    os._exit(status)


def main() -> None:
    config = json.loads(sys.argv[1])
    proto_in, proto_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    for name in config.get("preload", ()):
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a module missing from this Python is not fatal
            pass
    os.environ.clear()  # children inherit exactly the configured environment
    os.environ.update(config.get("env", {}))
    for name, source in config.get("modules", {}).items():
        module = types.ModuleType(name)
        module.__file__ = f"{name}.py"
        sys.modules[name] = module
        exec(compile(source, module.__file__, "exec"), module.__dict__)
    worker = Worker(config)
    server_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    gc.freeze()  # the collector then leaves the shared objects alone: fewer copy-on-write faults
    if os.fork() == 0:
        zygote_end.close()
        worker.serve(proto_in, proto_out, server_end)
        return
    server_end.close()
    # Only the server speaks to the host. Fds 0-4 stay taken, so every pipe a spare opens is >= 5
    # and its dup2 onto 0-4 never overwrites one it still has to move.
    os.dup2(null, proto_in)
    os.dup2(null, proto_out)
    _zygote(worker, zygote_end)


if __name__ == "__main__":
    main()
