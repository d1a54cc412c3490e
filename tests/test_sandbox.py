"""The sandbox: exec semantics, isolation against hostile programs, the warm pool's resilience."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings

import pytest

from selfgym.envs.code.sandbox import SandboxConfig, available_backends, make_sandbox
from selfgym.envs.code.selfcheck import CHECKS
from selfgym.errors import ConfigError, SandboxError


@pytest.fixture(scope="module")
def box():
    """The isolating bwrap sandbox with a warm pool of two workers."""
    try:
        sandbox = make_sandbox(SandboxConfig(backend="bwrap"))
    except SandboxError as exc:
        pytest.skip(f"bwrap does not work on this host: {exc}")
    yield sandbox
    sandbox.close()


# ----------------------------------------------------------------------------- exec semantics
def test_exec_runs_python_with_stdin_and_reports_output(box):
    start = time.monotonic()
    result = box.exec("import sys\nname = input()\nprint(f'hello {name}')\nprint('warn', file=sys.stderr)",
                      stdin="world\n")
    wall = time.monotonic() - start
    assert result.ok and result.stdout == "hello world\n" and result.stderr == "warn\n"
    # the program's own run time, measured inside the exec: positive and within the call's wall time
    assert not result.timed_out and not result.oom and 0 < result.duration_s <= wall


def test_files_are_importable_next_to_the_code(box):
    files = {"skills/__init__.py": "", "skills/maths.py": "def double(x):\n    return 2 * x\n",
             "data/input.bin": b"\x00\x01\x02"}
    code = "from skills.maths import double\nprint(double(21), open('data/input.bin', 'rb').read())"
    assert box.exec(code, files=files).stdout == "42 b'\\x00\\x01\\x02'\n"


def test_a_program_starts_from_a_clean_main_whatever_ran_before(box):
    """The spare child warms the interpreter up before its request: none of that reaches the program."""
    probe = ("import sys\nprint(sorted(k for k in globals() if not k.startswith('__')), "
             "sorted(k for k in globals() if k.startswith('__')), sys.stdout.tell() if sys.stdout.seekable() else 0)")
    box.exec("values = 'planted'\ntext = 'planted'\nimport json\nprint('x' * 100)")
    result = box.exec(probe)
    assert result.ok and result.stderr == ""
    assert result.stdout == ("['sys'] ['__builtins__', '__doc__', '__file__', '__loader__', '__name__', '__package__', "
                             "'__spec__'] 0\n")
    assert box.exec("print(__name__, 'values' in dir(), 'json' in globals())").stdout == "__main__ False False\n"


def test_program_errors_are_results_not_exceptions(box):
    crash = box.exec("def f():\n    return 1 / 0\nf()\n")
    assert crash.exit_code == 1 and "ZeroDivisionError" in crash.stderr and 'main.py", line 2, in f' in crash.stderr
    assert box.exec("import sys\nsys.exit(3)").exit_code == 3
    syntax = box.exec("def broken(:\n")
    assert syntax.exit_code == 1 and "SyntaxError" in syntax.stderr


def test_a_program_killed_by_a_signal_reports_the_signal(box):
    # No exit code is announced here: the status comes from the process that reaps the child.
    crash = box.exec("import os, signal\nprint('before', flush=True)\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    assert (crash.exit_code, crash.signal, crash.stdout) == (-signal.SIGSEGV, signal.SIGSEGV, "before\n")
    killed = box.exec(["sh", "-c", "echo started; kill -9 $$"])
    assert (killed.exit_code, killed.signal, killed.stdout) == (-signal.SIGKILL, signal.SIGKILL, "started\n")
    assert box.exec("print('next')").stdout == "next\n"


def test_a_command_can_run_instead_of_python(box):
    result = box.exec(["sh", "-c", "echo from-shell; exit 4"])
    assert result.stdout == "from-shell\n" and result.exit_code == 4


def test_bad_file_paths_are_refused(box):
    with pytest.raises(ValueError, match="inside the work directory"):
        box.exec("print(1)", files={"../escape.py": "x = 1"})


def test_writing_a_huge_file_hits_the_file_size_limit(box):
    result = box.exec("open('big.bin', 'wb').write(b'0' * (64 * 1024 * 1024))")
    assert result.exit_code == 1 and "File too large" in result.stderr


# ----------------------------------------------------------------------------- isolation
@pytest.mark.parametrize("check", list(CHECKS))
def test_isolation(box, check):
    ok, detail = CHECKS[check](box)
    assert ok, detail


LIVE_PROCESSES = """import os
me = os.getpid()
for pid in sorted(int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != me):
    try:
        comm, state = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[0].split('(', 1)[1], open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[0]
    except OSError:
        continue
    if state not in 'ZX':
        print(pid, comm)
"""
# Daemons that let go of the output pipes: the exec ends normally and the worker is kept for the next.
LEAVE_DAEMONS = ("import os, subprocess\nquiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
                 "subprocess.Popen(['sleep', '1000'], start_new_session=True, **quiet)\n"
                 "if os.fork() == 0:\n    os.setsid()\n    subprocess.Popen(['sleep', '1001'], **quiet)\n    os._exit(0)\n"
                 "print('left')\n")


def _one_worker_bwrap(*, switch_uid: bool):
    """A bwrap sandbox with one warm worker; without ``switch_uid`` it runs as it does for a user
    who cannot switch uids (not root): every process shares one uid, so the cleanup cannot kill by uid."""
    from selfgym.envs.code.backends import BwrapBackend
    from selfgym.envs.code.pool import PooledSandbox

    config = SandboxConfig(backend="bwrap", pool_size=1)
    backend = BwrapBackend(config)
    try:
        backend.check()
    except SandboxError as exc:
        pytest.skip(f"bwrap does not work on this host: {exc}")
    backend.root = backend.root and switch_uid
    sandbox = PooledSandbox(backend, config)
    sandbox.start()
    return sandbox


@pytest.mark.parametrize("switch_uid", [True, False], ids=["sandbox uid", "no uid to switch to"])
def test_processes_a_program_leaves_are_gone_for_the_next_exec(switch_uid):
    with _one_worker_bwrap(switch_uid=switch_uid) as sandbox:
        assert sandbox.exec(LEAVE_DAEMONS).stdout == "left\n"
        live = sandbox.exec(LIVE_PROCESSES).stdout
        assert sandbox.stats["recycled"] == 0  # the same worker, cleaned up
        # bwrap's init, the zygote and the server are all that run besides the program itself
        assert "sleep" not in live and len(live.splitlines()) == 3, live


@pytest.mark.parametrize("check", ["writes", "reads", "no_state_between_execs"])
def test_without_a_uid_to_switch_to_the_sandbox_still_keeps_writes_in_its_scratch_dirs(check):
    # The sandbox's root is bwrap's own tmpfs: a program that owns it (no uid to drop to) must not be
    # able to leave a file there for the next exec.
    with _one_worker_bwrap(switch_uid=False) as sandbox:
        ok, detail = CHECKS[check](sandbox)
    assert ok, detail


def test_host_survives_and_pool_still_answers_after_attacks(box):
    assert box.exec("print(sum(range(10)))").stdout == "45\n"


# ----------------------------------------------------------------------------- the warm pool
def test_concurrent_execs_from_threads_all_get_their_own_answer(box):
    answers, errors = {}, []

    def worker(base: int) -> None:
        try:
            for i in range(base, base + 15):
                answers[i] = box.exec(f"print({i} * {i})").stdout
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n * 100,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert answers == {i: f"{i * i}\n" for n in range(4) for i in range(n * 100, n * 100 + 15)}


def test_normal_execs_reuse_the_warm_workers_without_retries():
    with make_sandbox(SandboxConfig(backend="bwrap", pool_size=2)) as sandbox:
        outputs = [sandbox.exec(f"print({i})", stdin="x" * i).stdout for i in range(40)]
        assert outputs == [f"{i}\n" for i in range(40)]
        assert sandbox.stats["spawned"] == 2 and sandbox.stats["retried"] == 0 and sandbox.stats["recycled"] == 0


def test_a_dead_idle_worker_is_replaced_transparently():
    with make_sandbox(SandboxConfig(backend="bwrap", pool_size=1)) as sandbox:
        workers = sandbox.worker_pids()
        assert len(workers) == 1
        os.kill(workers[0], signal.SIGKILL)
        time.sleep(0.1)
        assert sandbox.exec("print('still here')").stdout == "still here\n"
        assert sandbox.stats["spawned"] >= 2


def test_a_worker_killed_mid_exec_is_retried_on_a_fresh_one():
    with make_sandbox(SandboxConfig(backend="bwrap", pool_size=1)) as sandbox:
        results = []
        thread = threading.Thread(target=lambda: results.append(
            sandbox.exec("import time\ntime.sleep(1)\nprint('done')")))
        thread.start()
        deadline = time.monotonic() + 10
        while sandbox._idle and time.monotonic() < deadline:  # wait until the exec holds the worker
            time.sleep(0.01)
        time.sleep(0.2)
        for pid in sandbox.worker_pids():
            os.kill(pid, signal.SIGKILL)
        thread.join(timeout=20)
        assert results and results[0].stdout == "done\n"
        assert sandbox.stats["retried"] == 1


def test_workers_are_recycled_after_max_uses():
    with make_sandbox(SandboxConfig(backend="bwrap", pool_size=1, max_uses=3)) as sandbox:
        outputs = [sandbox.exec(f"print({i})").stdout for i in range(7)]
        assert outputs == [f"{i}\n" for i in range(7)]
        assert sandbox.stats["spawned"] >= 3 and sandbox.stats["recycled"] >= 2


def test_cold_mode_starts_a_sandbox_per_exec():
    with make_sandbox(SandboxConfig(backend="bwrap", pool_size=0)) as sandbox:
        before = sandbox.stats["spawned"]
        assert sandbox.exec("print('cold')").stdout == "cold\n"
        assert sandbox.stats["spawned"] == before + 1


def test_a_sandbox_that_cannot_start_raises_sandbox_error():
    with pytest.raises(SandboxError, match="bwrap"):
        make_sandbox(SandboxConfig(backend="bwrap", python="/bin/false"))


def test_a_closed_sandbox_raises_sandbox_error():
    sandbox = make_sandbox(SandboxConfig(backend="bwrap", pool_size=1))
    sandbox.close()
    with pytest.raises(SandboxError, match="closed"):
        sandbox.exec("print(1)")


# ----------------------------------------------------------------------------- backend choice
def test_process_backend_is_opt_in_warns_and_is_not_isolated(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("visible")
    with pytest.warns(RuntimeWarning, match="WITHOUT isolation"):
        from selfgym.envs.code import backends

        backends._warned_process = False
        sandbox = make_sandbox(SandboxConfig(backend="process", pool_size=1))
    with sandbox:
        assert sandbox.isolated is False
        assert sandbox.exec(f"print(open({str(secret)!r}).read())").stdout == "visible\n"


def test_fallback_happens_only_where_allowed(monkeypatch):
    status = available_backends()
    if status["docker"] is None:
        pytest.skip("a Docker engine answers here, so docker would not fall back")
    with pytest.raises(SandboxError) as excinfo:
        make_sandbox(SandboxConfig(backend="docker"))
    assert "docker:" in str(excinfo.value) and "backend='process'" in str(excinfo.value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with make_sandbox(SandboxConfig(backend="docker", allow_fallback=("process",), pool_size=1)) as sandbox:
            assert sandbox.name == "process"
        monkeypatch.setenv("SELFGYM_SANDBOX", "process")
        with make_sandbox(SandboxConfig(pool_size=1)) as sandbox:
            assert sandbox.name == "process"


def test_config_errors_say_what_to_change():
    with pytest.raises(ConfigError, match="unknown sandbox backend 'nope'"):
        make_sandbox(SandboxConfig(backend="nope"))
    with pytest.raises(ConfigError, match="memory_mb"):
        SandboxConfig(memory_mb=8)


def test_docker_stream_frames_are_demultiplexed():
    """The engine multiplexes the worker's stdout and stderr in framed chunks over one socket."""
    import socket
    import struct

    from selfgym.envs.code.docker_backend import DockerTransport

    ours, engine = socket.socketpair()
    transport = DockerTransport.__new__(DockerTransport)  # the socket part only: no engine here
    transport._raw = ours
    transport._init_streams()
    frames = [(2, b"worker warning\n"), (1, b"\x00\x00\x00\x05hel"), (1, b"lo"), (2, b"more\n")]
    engine.sendall(b"".join(struct.pack(">BxxxL", stream, len(data)) + data for stream, data in frames))
    # deadlines for bytes already sent are generous; only the idle read below is meant to time out
    assert transport.recv(4, time.monotonic() + 30) == b"\x00\x00\x00\x05"
    assert transport.recv(5, time.monotonic() + 30) == b"hello"
    assert transport._stderr == bytearray(b"worker warning\n")
    engine.close()
    with pytest.raises(EOFError):
        transport.recv(1, time.monotonic() + 30)
    idle_ours, idle_engine = socket.socketpair()
    transport._raw, transport._dead = idle_ours, False
    with pytest.raises(TimeoutError):  # nothing is ever sent: times out however busy the machine is
        transport.recv(1, time.monotonic() + 0.2)
    ours.close()
    idle_ours.close()
    idle_engine.close()


@pytest.mark.docker
def test_docker_backend_passes_the_isolation_checks():
    reason = available_backends()["docker"]
    if reason is not None:
        pytest.skip(f"docker backend unavailable: {reason}")
    with make_sandbox(SandboxConfig(backend="docker", pool_size=1)) as sandbox:
        assert sandbox.exec("print('in a container')").stdout == "in a container\n"
        for name in ("network", "writes", "reads", "memory_bomb", "infinite_loop", "no_state_between_execs"):
            ok, detail = CHECKS[name](sandbox)
            assert ok, f"{name}: {detail}"
