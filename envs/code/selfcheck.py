"""Isolation checks every isolating sandbox backend must pass (run them on a new backend).

Each check runs a hostile program in the sandbox and verifies, from the host, that nothing got
out: no network, no writes or reads outside the sandbox, fork and memory bombs contained,
runaway loops killed, no process left behind, nothing carried from one exec to the next::

    from selfgym.envs.code.selfcheck import run_checks
    failures = {name: detail for name, (ok, detail) in run_checks(sandbox).items() if not ok}
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from .sandbox import Sandbox

__all__ = ["CHECKS", "run_checks", "sandbox_processes"]

Check = Callable[[Sandbox], tuple[bool, str]]
SANDBOX_UIDS = range(200_000, 2_000_000_000)  # see pool.sandbox_uid


def sandbox_processes(root: int | None = None) -> list[int]:
    """Pids under a sandbox uid that descend from ``root`` (default: this process).

    Those are what an exec left behind once it has returned. Processes of other programs' sandboxes
    are not counted; a backend whose processes do not descend from the host process (a container
    engine) needs its own listing.
    """
    root = os.getpid() if root is None else root
    parents, uids = {}, {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="utf-8") as fh:
                parents[int(entry.name)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            uids[int(entry.name)] = entry.stat().st_uid
        except (OSError, IndexError, ValueError):
            continue

    def descends(pid: int) -> bool:
        for _ in range(64):
            pid = parents.get(pid, 0)
            if pid == root:
                return True
            if pid <= 1:
                return False
        return False

    return [pid for pid, uid in uids.items() if uid in SANDBOX_UIDS and descends(pid)]


def check_network(sandbox: Sandbox) -> tuple[bool, str]:
    """A TCP server on the host's loopback and an outside address are both unreachable."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    port = server.getsockname()[1]
    code = f"""
import socket
for address in [("127.0.0.1", {port}), ("1.1.1.1", 53)]:
    try:
        socket.create_connection(address, timeout=2).close()
        print("connected", address)
    except OSError as exc:
        print("blocked", type(exc).__name__)
"""
    result = sandbox.exec(code, timeout_s=10)
    try:
        server.accept()
        reached = True
    except BlockingIOError:
        reached = False
    finally:
        server.close()
    ok = not reached and "connected" not in result.stdout and result.stdout.count("blocked") == 2
    return ok, result.stdout.strip() or result.stderr[-300:]


def check_writes(sandbox: Sandbox) -> tuple[bool, str]:
    """System dirs are read-only, host paths unreachable; the sandbox's /tmp is not the host's."""
    host_dir = Path(tempfile.mkdtemp(prefix="selfgym-check-"))
    marker = f"selfgym-{uuid.uuid4().hex}"
    targets = ["/usr/" + marker, "/etc/" + marker, "/" + marker, str(host_dir / marker)]
    code = f"""
import json
out = {{}}
for path in {targets!r} + ["/tmp/{marker}"]:
    try:
        with open(path, "w") as fh:
            fh.write("x")
        out[path] = "written"
    except OSError as exc:
        out[path] = type(exc).__name__
print(json.dumps(out))
"""
    result = sandbox.exec(code, timeout_s=10)
    leaked = [p for p in targets + ["/tmp/" + marker] if os.path.exists(p)]
    for path in leaked:
        os.unlink(path)
    os.rmdir(host_dir)
    try:
        outcome = json.loads(result.stdout)
    except json.JSONDecodeError:
        return False, result.stderr[-300:]
    ok = not leaked and all(outcome[p] != "written" for p in targets) and outcome["/tmp/" + marker] == "written"
    return ok, json.dumps(outcome)


def check_reads(sandbox: Sandbox) -> tuple[bool, str]:
    """A host file the sandbox was not given cannot be read, nor the host's /etc/shadow and /etc/passwd."""
    with tempfile.NamedTemporaryFile("w", prefix="selfgym-secret-", suffix=".txt", delete=False) as fh:
        fh.write("TOP-SECRET")
    code = f"""
import os
for path in [{fh.name!r}, "/etc/shadow", "/etc/passwd"]:
    try:
        print(open(path).read()[:40])
    except OSError as exc:
        print("denied", type(exc).__name__)
"""
    try:
        result = sandbox.exec(code, timeout_s=10)
    finally:
        os.unlink(fh.name)
    ok = "TOP-SECRET" not in result.stdout and "root:" not in result.stdout and result.stdout.count("denied") == 3
    return ok, result.stdout.strip() or result.stderr[-300:]


def check_fork_bomb(sandbox: Sandbox) -> tuple[bool, str]:
    """A fork bomb hits the process limit, is killed at the deadline, and leaves nothing behind."""
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = sandbox.exec(code, timeout_s=2)
    time.sleep(0.2)
    leftovers = sandbox_processes()
    after = sandbox.exec("print('alive')", timeout_s=10)
    ok = result.timed_out and not leftovers and after.stdout == "alive\n"
    return ok, f"timed_out={result.timed_out} leftovers={len(leftovers)} after={after.stdout!r}"


def check_memory_bomb(sandbox: Sandbox) -> tuple[bool, str]:
    """Allocating far more than the limit fails inside the sandbox (oom), not on the host."""
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(64 * 1024 * 1024))\n"
    result = sandbox.exec(code, timeout_s=20, memory_mb=256)
    return result.oom and not result.ok, f"oom={result.oom} exit={result.exit_code} {result.stderr[-120:]!r}"


def check_infinite_loop(sandbox: Sandbox) -> tuple[bool, str]:
    """A busy loop and a long sleep are both killed at the wall-clock deadline."""
    spin = sandbox.exec("while True:\n    pass\n", timeout_s=1)
    sleep = sandbox.exec("import time\ntime.sleep(60)\n", timeout_s=1)
    # the bound leaves room for a busy host; a sleep that was not killed would take the full 60 s
    ok = spin.timed_out and sleep.timed_out and spin.duration_s < 30 and sleep.duration_s < 30
    return ok, f"spin {spin.timed_out} {spin.duration_s:.2f}s, sleep {sleep.timed_out} {sleep.duration_s:.2f}s"


def check_leftover_processes(sandbox: Sandbox) -> tuple[bool, str]:
    """Daemons started by the program die when it exits; an orphan holding stdout does not stall the exec."""
    code = ("import subprocess\nsubprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
            "subprocess.Popen(['sleep', '1000'])\nprint('started')\n")
    start = time.monotonic()
    result = sandbox.exec(code, timeout_s=60)
    elapsed = time.monotonic() - start
    time.sleep(0.2)
    leftovers = sandbox_processes()
    # an exec stalled by the orphan would run into its 60 s timeout; 30 s leaves room for a busy host
    ok = result.stdout == "started\n" and not result.timed_out and not leftovers and elapsed < 30
    return ok, f"stdout={result.stdout!r} leftovers={len(leftovers)} elapsed={elapsed:.2f}s {result.stderr[-200:]!r}"


def check_no_state_between_execs(sandbox: Sandbox) -> tuple[bool, str]:
    """Files written by one exec (work dir, /tmp) are gone for the next."""
    sandbox.exec("open('left.txt', 'w').write('x')\nopen('/tmp/left.txt', 'w').write('x')\n", timeout_s=10)
    result = sandbox.exec("import os\nprint(os.path.exists('left.txt'), os.path.exists('/tmp/left.txt'))\n",
                          timeout_s=10)
    return result.stdout == "False False\n", result.stdout.strip() or result.stderr[-300:]


def check_output_flood(sandbox: Sandbox) -> tuple[bool, str]:
    """A program printing megabytes is cut at the output limit and marked truncated."""
    result = sandbox.exec("import sys\nsys.stdout.write('x' * 20_000_000)\n", timeout_s=20)
    ok = result.truncated_output and len(result.stdout) < 1_000_000
    return ok, f"truncated={result.truncated_output} kept={len(result.stdout)}"


CHECKS: dict[str, Check] = {
    "network": check_network,
    "writes": check_writes,
    "reads": check_reads,
    "fork_bomb": check_fork_bomb,
    "memory_bomb": check_memory_bomb,
    "infinite_loop": check_infinite_loop,
    "leftover_processes": check_leftover_processes,
    "no_state_between_execs": check_no_state_between_execs,
    "output_flood": check_output_flood,
}


def run_checks(sandbox: Sandbox) -> dict[str, tuple[bool, str]]:
    """Every check on ``sandbox``: name -> (passed, detail)."""
    return {name: check(sandbox) for name, check in CHECKS.items()}
