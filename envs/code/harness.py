"""The test harness that runs *inside* the sandbox (standard library only, Python >= 3.9).

Two processes, so that the verdict is out of the candidate's reach:

- the **runner** (the process the verifier starts: ``main()``, preloaded by warm workers as
  ``_selfgym_harness``) holds the tests, the expected values and the comparisons, and prints the
  one report line, prefixed with a one-time nonce;
- the **candidate** process is forked by the runner *before* the runner reads the tests (its
  memory never held them; they arrive on the runner's stdin, never on disk). It gets fresh pipes
  for everything (stdout and stderr go to the runner, which keeps them as data) and none of the
  runner's descriptors; the runner is not dumpable (``PR_SET_DUMPABLE`` 0), so the candidate can
  neither ptrace it nor open its ``/proc/<pid>/mem``, ``environ`` or ``fd``. The candidate loads
  ``solution.py`` (as module ``solution``) and serves calls.

Only plain data crosses: call arguments in, return values out, encoded as tagged JSON of builtin
types (``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, ``list``, ``tuple``,
``dict``, ``set``, ``frozenset``); the runner decodes them strictly, so a value with a rigged
``__eq__`` cannot arrive. Subclasses travel as their base type (a ``namedtuple`` as a ``tuple``);
any other value (a function, a generator, an instance of the candidate's class) fails the test
that got it, saying so. In the runner the candidate's functions are proxies: ``check(candidate)``
(HumanEval), ``assert add(1, 2) == 3`` (MBPP) and the ``call`` comparisons are all evaluated by the
runner, with the task's trusted ``preamble`` and ``setup_code`` run in the runner's own namespace
(the candidate's process runs them too, before its code). Names the tests use that are builtins or
come from the preamble are never proxied, so the candidate cannot shadow ``abs`` or a helper.

Test kinds:

- ``call``: ``{"args": "(1, 2)", "kwargs": "{}", "expected": "3"}`` (Python literals); the result
  must equal ``expected`` with the same type (ints and floats compare numerically).
- ``assert``: ``"assert add(1, 2) == 3"`` statements run in the runner's namespace (MBPP).
- ``check``: a program defining ``check(candidate)`` (HumanEval), run in the runner's namespace.

Each test has its own time limit: the candidate process raises a ``TestTimeout`` in the code at
the limit, and the runner kills it if it does not answer soon after. If the candidate process ends
(``os._exit``, a signal, a kill after a time limit), the tests still to run fail with that reason.
Errors that are about the program rather than an exception it raised start with "your " (the
feedback words them as failures, not as ``raised ...``). A failed ``x == y`` assertion is explained by evaluating both sides again (``got`` / ``expected``).
"""

from __future__ import annotations

import _signal  # not ``signal``: its enum wrappers cost milliseconds in every fresh child
import ast
import base64
import builtins
import fcntl
import json
import math
import os
import select
import struct
import sys
import time
import traceback
from typing import Any, NoReturn

_LIBC: Any
try:  # prctl(PR_SET_DUMPABLE, 0); loaded once by warm workers
    import ctypes

    _LIBC = ctypes.CDLL(None, use_errno=True)
except (ImportError, OSError):  # pragma: no cover - a Python without ctypes: rely on the uid drop
    _LIBC = None

MAX_REPR = 300
MAX_OUTPUT = 2000  # characters of the candidate's output kept in the report
MAX_MESSAGE = 8 << 20  # bytes of one message between the two processes
MAX_DEPTH = 200  # nesting of a value that crosses
GRACE_S = 0.5
PIPELINE_BYTES = 32 << 10  # call tests sent ahead at most (both pipes' buffers hold 64 KiB)  # how long past a time limit the runner waits before it kills the candidate
SOLUTION = "solution.py"
TESTS = "<tests>"
PR_SET_DUMPABLE = 4
_HEADER = struct.Struct(">I")
# Signals the candidate could send the runner; ignored there (SIGKILL and SIGSTOP cannot be, and
# only end in a report that never comes: a failed verdict).
_IGNORED = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGPIPE", "SIGTSTP",
            "SIGTTIN", "SIGTTOU", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGURG")
PLAIN_TYPES = "int, float, str, bool, None, list, tuple, dict, set or bytes"


class TestTimeout(BaseException):
    """Raised by the alarm in the candidate process; a BaseException so ``except Exception`` misses it."""


class CandidateTimeout(BaseException):
    """In the runner: a call into the candidate ran past its time limit."""


class CandidateGone(BaseException):
    """In the runner: the candidate process has ended; no more calls can be made."""


class UncheckableValue(BaseException):
    """In the runner: the candidate returned something that is not plain data."""


class CandidateError(Exception):
    """In the runner: the candidate raised an exception that is not a builtin one."""


class BadMessage(Exception):
    """A message between the two processes that does not follow the protocol."""


# ---------------------------------------------------------------------------------------- values
_SEQUENCES: tuple[tuple[Any, str], ...] = ((list, "l"), (tuple, "t"), (frozenset, "z"), (set, "s"))


def encode(value, depth: int = 0):
    """``value`` as tagged JSON of builtin types (``ValueError`` for anything else)."""
    if depth > MAX_DEPTH:
        raise ValueError("a value nested too deep")
    if value is None or value is True or value is False:
        return value
    if isinstance(value, int):
        return ["i", str(int(value))]
    if isinstance(value, float):
        return ["f", repr(float(value))]
    if isinstance(value, str):
        return str.__getitem__(value, slice(None))  # a plain str, whatever the subclass says
    if isinstance(value, complex):
        value = complex(value)
        return ["c", repr(value.real), repr(value.imag)]
    if isinstance(value, (bytes, bytearray)):
        return ["b", base64.b64encode(bytes(value)).decode("ascii")]
    for kind, tag in _SEQUENCES:
        if isinstance(value, kind):
            return [tag, [encode(item, depth + 1) for item in kind.__iter__(value)]]
    if isinstance(value, dict):
        return ["d", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(value)]]
    raise ValueError(f"a value of type {type(value).__name__}")


_CONTAINERS: dict[str, Any] = {"l": list, "t": tuple, "s": set, "z": frozenset}


def decode(data, depth: int = 0):
    """The builtin value of tagged JSON; ``BadMessage`` for anything that is not exactly that."""
    if depth > MAX_DEPTH:
        raise BadMessage("a value nested too deep")
    if data is None or data is True or data is False or type(data) is str:
        return data
    if type(data) is not list or len(data) < 2 or type(data[0]) is not str:
        raise BadMessage(f"not a tagged value: {type(data).__name__}")
    tag, body = data[0], data[1]
    try:
        if tag == "i" and type(body) is str and len(data) == 2:
            return int(body)
        if tag == "f" and type(body) is str and len(data) == 2 and len(body) < 64:
            return float(body)
        if tag == "c" and len(data) == 3 and type(body) is str and type(data[2]) is str:
            return complex(float(body), float(data[2]))
        if tag == "b" and type(body) is str and len(data) == 2:
            return base64.b64decode(body, validate=True)
        if tag in _CONTAINERS and type(body) is list and len(data) == 2:
            return _CONTAINERS[tag](decode(item, depth + 1) for item in body)
        if tag == "d" and type(body) is list and len(data) == 2:
            pairs = []
            for pair in body:
                if type(pair) is not list or len(pair) != 2:
                    raise BadMessage("a dict item is not a pair")
                pairs.append((decode(pair[0], depth + 1), decode(pair[1], depth + 1)))
            return dict(pairs)
    except (ValueError, TypeError, OverflowError) as exc:  # int/float/b64 syntax, unhashable keys
        raise BadMessage(f"a malformed {tag!r} value: {type(exc).__name__}") from None
    raise BadMessage(f"unknown value tag {tag!r}")


# ---------------------------------------------------------------------------------------- framing
def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def send(fd: int, message: dict) -> None:
    body = json.dumps(message).encode()
    _write_all(fd, _HEADER.pack(len(body)) + body)


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv_blocking(fd: int) -> dict | None:
    """The next message (the candidate side: it trusts the runner); None at end of input."""
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    body = _read_exactly(fd, _HEADER.unpack(header)[0])
    return None if body is None else json.loads(body)


# ---------------------------------------------------------------------------------------- text
def _short(value) -> str:
    try:
        text = repr(value)
    except BaseException as exc:  # noqa: BLE001 - a broken __repr__ is the candidate's
        text = f"<unprintable {type(value).__name__}: {type(exc).__name__}>"
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def _error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def _solution_frames(tb) -> str | None:
    """The last frames of the traceback that are in the candidate's code, one line each."""
    lines: list = []
    for f in traceback.extract_tb(tb):
        if f.filename == SOLUTION:
            line = f"line {f.lineno}, in {f.name}: {(f.line or '').strip()}"
            if lines and lines[-1][0] == line:
                lines[-1][1] += 1  # deep recursion: one line, with a count
            else:
                lines.append([line, 1])
    shown = [line if count == 1 else f"{line}  (repeated {count} times)" for line, count in lines[-3:]]
    return "\n".join(shown) or None


def _stable_repr(value) -> str:
    """``repr`` of a literal, with set members sorted: a set of strings iterates in an order that
    depends on the process's hash seed, and the host and the runner must name a test alike."""
    if isinstance(value, (set, frozenset)):
        items = ", ".join(sorted(_stable_repr(v) for v in value))
        return (f"{{{items}}}" if isinstance(value, set) else f"frozenset({{{items}}})") if value else repr(value)
    if isinstance(value, tuple):
        return f"({_stable_repr(value[0])},)" if len(value) == 1 else f"({', '.join(map(_stable_repr, value))})"
    if isinstance(value, list):
        return f"[{', '.join(map(_stable_repr, value))}]"
    if isinstance(value, dict):
        return f"{{{', '.join(f'{_stable_repr(k)}: {_stable_repr(v)}' for k, v in value.items())}}}"
    return repr(value)


def _short_literal(value) -> str:
    text = _stable_repr(value)
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def call_label(name: str, args: tuple, kwargs: dict) -> str:
    """How a ``call`` test is named in the report (the host computes the same to check it)."""
    shown = [_short_literal(a) for a in args] + [f"{k}={_short_literal(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(shown)})"


# ---------------------------------------------------------------------------------------- candidate
def _on_alarm(signum, frame):
    raise TestTimeout()


class _TimeLimit:
    def __init__(self, seconds: float) -> None:
        self.seconds = max(seconds, 0.001)

    def __enter__(self):
        _signal.setitimer(_signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc):
        _signal.setitimer(_signal.ITIMER_REAL, 0)
        return False


def _candidate_load(message: dict) -> tuple[dict | None, dict]:
    """Execute preamble, setup and solution into a fresh namespace: (scope, answer)."""
    scope = {"__name__": "solution", "__builtins__": builtins}
    with open(SOLUTION, encoding="utf-8") as fh:
        source = fh.read()
    try:
        code = compile(source, SOLUTION, "exec")
    except SyntaxError as exc:
        return None, {"kind": "syntax_error", "msg": str(exc.msg), "line": exc.lineno, "offset": exc.offset,
                      "text": (exc.text or "").rstrip("\n")}
    try:
        with _TimeLimit(message["timeout"]):
            for part in (message.get("preamble"), message.get("setup_code")):
                if part:
                    exec(compile(part, "<preamble>", "exec"), scope)
            exec(code, scope)
    except TestTimeout:
        return None, {"kind": "load_error", "error": "timed out while defining your code", "timed_out": True}
    except BaseException as exc:  # noqa: BLE001 - including SystemExit from the candidate
        return None, {"kind": "load_error", "error": _error(exc), "traceback": _solution_frames(exc.__traceback__)}
    name = message.get("entry_point")
    if name and not callable(scope.get(name)):
        defined = sorted(k for k, v in scope.items() if callable(v) and getattr(v, "__module__", "") == "solution")
        return scope, {"kind": "missing", "name": name, "defined": defined}
    return scope, {"kind": "loaded"}


def _candidate_call(scope: dict, message: dict) -> dict:
    name = message["name"]
    function = scope.get(name)
    try:
        with _TimeLimit(message["timeout"]):
            if function is None:
                raise NameError(f"name {name!r} is not defined")
            value = function(*decode(message["args"]), **decode(message["kwargs"]))
            try:
                return {"kind": "value", "value": encode(value)}
            except (ValueError, RecursionError, MemoryError):
                return {"kind": "uncheckable", "type": type(value).__name__, "repr": _short(value)}
    except TestTimeout:
        return {"kind": "timeout"}
    except BaseException as exc:  # noqa: BLE001 - the candidate's error is the test's outcome
        builtin = isinstance(getattr(builtins, type(exc).__name__, None), type) and type(exc).__module__ == "builtins"
        return {"kind": "error", "type": type(exc).__name__, "builtin": builtin, "message": _short(str(exc))[:MAX_REPR],
                "error": _error(exc), "traceback": _solution_frames(exc.__traceback__)}


def _candidate_main(requests: int, answers: int) -> None:
    """The candidate process: serve load and call requests until the runner closes the pipe."""
    try:
        _signal.signal(_signal.SIGALRM, _on_alarm)
        scope: dict = {}
        while True:
            message = recv_blocking(requests)
            if message is None:
                break
            if message["op"] == "load":
                loaded, answer = _candidate_load(message)
                scope = loaded or {}
            else:
                answer = _candidate_call(scope, message)
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except BaseException:  # noqa: BLE001 - the candidate may have broken its streams
                pass
            send(answers, answer)
    finally:
        os._exit(0)


def _close_from(low: int) -> None:
    """Close every descriptor >= ``low`` (below the fd limit: a 65536-wide closerange costs ms)."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = []
    os.closerange(low, max([os.sysconf("SC_OPEN_MAX"), *(fd + 1 for fd in fds)]))


def _fork_candidate() -> Candidate:
    """Fork the candidate process with its own pipes and nothing else of the runner's."""
    requests, answers, output = os.pipe(), os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in (requests[0], answers[1], output[1])]
            null = os.open(os.devnull, os.O_RDONLY)
            for source, target in ((null, 0), (high[2], 1), (high[2], 2), (high[0], 3), (high[1], 4)):
                os.dup2(source, target)
            _close_from(5)
            sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
            _candidate_main(3, 4)
        finally:
            os._exit(0)
    os.close(requests[0])
    os.close(answers[1])
    os.close(output[1])
    return Candidate(pid, requests[1], answers[0], output[0])


# ---------------------------------------------------------------------------------------- runner
class Candidate:
    """The runner's handle on the candidate process."""

    def __init__(self, pid: int, requests: int, answers: int, output: int) -> None:
        self.pid, self.requests, self.answers, self.output = pid, requests, answers, output
        self.printed = bytearray()
        self.gone: str | None = None  # why no more calls can be made
        self.deadline = 0.0  # the current test's time limit (monotonic)
        self.pending: list = []  # time limits of the requests posted and not yet answered

    def _drain(self) -> None:
        try:
            chunk = os.read(self.output, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            os.close(self.output)
            self.output = -1
        elif len(self.printed) < MAX_OUTPUT * 4:
            self.printed += chunk

    def _receive(self, until: float) -> dict | None:
        """One answer before ``until`` (None on timeout); ``CandidateGone`` when the process ended."""
        buffer = b""
        need = _HEADER.size
        header_done = False
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return None
            watch = [self.answers] + ([self.output] if self.output >= 0 else [])
            ready = select.select(watch, [], [], left)[0]
            if self.output in ready:
                self._drain()
            if self.answers not in ready:
                continue
            chunk = os.read(self.answers, min(need - len(buffer), 1 << 20))
            if not chunk:
                self._end("your program ended during the tests")
            buffer += chunk
            if len(buffer) < need:
                continue
            if not header_done:
                size = _HEADER.unpack(buffer)[0]
                if size > MAX_MESSAGE:
                    self._end(f"your program returned more than {MAX_MESSAGE >> 20} MiB of data")
                header_done, buffer, need = True, b"", size
                if size == 0:
                    self._end("your program's test process broke the protocol")
                continue
            try:
                message = json.loads(buffer)
            except (ValueError, RecursionError):
                self._end("your program's test process broke the protocol")
            if type(message) is not dict or type(message.get("kind")) is not str:
                self._end("your program's test process broke the protocol")
            return message

    def _end(self, why: str) -> NoReturn:
        """Kill the candidate process; every later call raises ``CandidateGone(why)``."""
        self.kill()
        if self.gone is None:
            status = self._status
            self.gone = why + (f" ({status})" if status else "")
        raise CandidateGone(self.gone)

    _status = ""

    def kill(self, *, wait: bool = True) -> None:
        """SIGKILL the candidate; ``wait`` for it (to learn how it ended) or leave it to the sandbox."""
        try:
            os.kill(self.pid, _signal.SIGKILL)
        except OSError:
            pass
        if not wait:
            return
        try:
            _, status = os.waitpid(self.pid, 0)
            if os.WIFEXITED(status):
                self._status = f"exit code {os.WEXITSTATUS(status)}"
            elif os.WTERMSIG(status) != _signal.SIGKILL:
                self._status = f"signal {os.WTERMSIG(status)}"
        except ChildProcessError:
            pass

    def post(self, message: dict, limit_s: float) -> None:
        """Send ``message`` without waiting: the candidate answers requests in order (``answer``)."""
        if self.gone is not None:
            raise CandidateGone(self.gone)
        try:
            send(self.requests, {**message, "timeout": limit_s})
        except OSError:
            self._end("your program ended during the tests")
        self.pending.append(limit_s)

    def answer(self) -> dict:
        """The answer to the oldest posted request, within its time limit from now (the candidate
        starts it when it has answered the one before); ``CandidateTimeout`` / ``CandidateGone``."""
        if self.gone is not None:
            raise CandidateGone(self.gone)
        answer = self._receive(time.monotonic() + self.pending.pop(0) + GRACE_S)
        if answer is None:
            self._end("your program was stopped after it ran past a time limit")
        if answer["kind"] == "timeout":
            raise CandidateTimeout()
        return answer

    def request(self, message: dict, limit_s: float) -> dict:
        """Send ``message`` with a time limit and wait for its answer."""
        self.post(message, limit_s)
        return self.answer()

    def call(self, name: str, args: tuple, kwargs: dict):
        """Call the candidate's ``name`` with plain data; its plain-data result or an exception."""
        answer = self.request(call_message(name, args, kwargs), max(self.deadline - time.monotonic(), 0.001))
        return self.result(name, answer)

    def result(self, name: str, answer: dict):
        """The value in a call's answer, or the exception the call ends in."""
        kind = answer["kind"]
        if kind == "value":
            try:
                return decode(answer.get("value"))
            except (BadMessage, RecursionError) as exc:
                self._end(f"your program's test process sent a malformed value ({exc})")
        if kind == "uncheckable":
            raise UncheckableValue(f"your {name}() returned {_text(answer.get('repr'))}, a {_text(answer.get('type'))}, "
                                   f"which cannot be checked (return plain data: {PLAIN_TYPES})")
        if kind == "error":
            raise _rebuilt(answer)
        self._end("your program's test process broke the protocol")

    def output_text(self) -> str:
        """What the candidate printed (after it has ended)."""
        until = time.monotonic() + 0.2
        while self.output >= 0 and time.monotonic() < until:
            if select.select([self.output], [], [], 0.05)[0]:
                self._drain()
        return self.printed.decode("utf-8", "replace")[:MAX_OUTPUT]


def call_message(name: str, args: tuple, kwargs: dict) -> dict:
    try:
        return {"op": "call", "name": name, "args": encode(tuple(args)), "kwargs": encode(dict(kwargs))}
    except (ValueError, RecursionError) as exc:
        raise TypeError(f"the tests pass {exc} to {name}(), which cannot be sent to your program") from None


def _text(value) -> str:
    return value[:MAX_REPR] if type(value) is str else "?"


def _rebuilt(answer: dict) -> BaseException:
    """The candidate's exception as the runner raises it: the builtin type where it is one."""
    name, message = _text(answer.get("type")), _text(answer.get("message"))
    cls = getattr(builtins, name, None)
    exc: Any
    if answer.get("builtin") is True and isinstance(cls, type) and issubclass(cls, Exception):
        try:
            exc = cls(message) if message else cls()
        except Exception:  # noqa: BLE001 - e.g. UnicodeDecodeError needs five arguments
            exc = CandidateError(_text(answer.get("error")))
    else:
        exc = CandidateError(_text(answer.get("error")))
    exc.candidate_error = _text(answer.get("error"))
    tb = answer.get("traceback")
    exc.candidate_traceback = tb[:MAX_REPR * 4] if type(tb) is str else None
    return exc


class Proxy:
    """One of the candidate's functions, as the runner's tests see it."""

    def __init__(self, candidate: Candidate, name: str) -> None:
        self._candidate, self.__name__ = candidate, name

    def __call__(self, *args, **kwargs):
        return self._candidate.call(self.__name__, args, kwargs)

    def __repr__(self) -> str:
        return f"<your function {self.__name__}>"


# ---------------------------------------------------------------------------------------- tests
def same(got, expected) -> bool:
    """Equal with the same builtin type, recursively; floats (and ints for floats) within 1e-6."""
    if isinstance(expected, float):
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            return False
        if math.isnan(expected):
            return isinstance(got, float) and math.isnan(got)
        return math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9)
    if type(got) is not type(expected):
        return False
    if isinstance(expected, (list, tuple)):
        return len(got) == len(expected) and all(same(got[i], expected[i]) for i in range(len(expected)))
    if isinstance(expected, dict):
        return got.keys() == expected.keys() and all(same(got[k], expected[k]) for k in expected)
    return got == expected


def _failure(exc: BaseException) -> dict:
    """A test's outcome fields for an exception raised while it ran in the runner."""
    if isinstance(exc, CandidateTimeout):
        return {"timed_out": True}
    if isinstance(exc, (CandidateGone, UncheckableValue)):
        return {"error": str(exc)}
    error = getattr(exc, "candidate_error", None)
    if error is not None:
        return {"error": error, "traceback": getattr(exc, "candidate_traceback", None)}
    return {"error": _error(exc)}


def _explain(node: ast.stmt, scope: dict, candidate: Candidate, limit_s: float, local: dict | None = None) -> dict:
    """For ``assert left == right``: the two sides' values, evaluated again."""
    if not (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1
            and isinstance(node.test.ops[0], ast.Eq)):
        return {}
    candidate.deadline = time.monotonic() + limit_s
    try:
        left = eval(compile(ast.Expression(node.test.left), TESTS, "eval"), scope, local)
        right = eval(compile(ast.Expression(node.test.comparators[0]), TESTS, "eval"), scope, local)
    except BaseException:  # noqa: BLE001 - the explanation is optional
        return {}
    return {"got": _short(left), "expected": _short(right)}


def parse_call(test: dict) -> tuple[tuple, dict, Any]:
    """A ``call`` test's arguments, keyword arguments and expected value (Python literals)."""
    return (ast.literal_eval(test["args"]), ast.literal_eval(test.get("kwargs") or "{}"),
            ast.literal_eval(test["expected"]))


def run_call(candidate: Candidate, name: str, call: tuple[tuple, dict, Any], timeout: float, *,
             posted: bool = False) -> dict:
    """One ``call`` test (``parse_call``); with ``posted`` its call was sent ahead (pipelined) and
    only the answer is read."""
    args, kwargs, expected = call
    outcome = {"label": call_label(name, args, kwargs), "expected": _short(expected)}
    candidate.deadline = time.monotonic() + timeout
    try:
        got = candidate.result(name, candidate.answer()) if posted else candidate.call(name, args, kwargs)
    except BaseException as exc:  # noqa: BLE001 - the candidate's failure is the test's outcome
        return {**outcome, "passed": False, **_failure(exc)}
    return {**outcome, "passed": same(got, expected), "got": _short(got)}


def run_assert(scope: dict, candidate: Candidate, statement: str, timeout: float) -> dict:
    outcome = {"label": statement.strip()}
    candidate.deadline = time.monotonic() + timeout
    try:
        tree = ast.parse(statement)
        exec(compile(tree, TESTS, "exec"), scope)
    except AssertionError:
        return {**outcome, "passed": False, **(_explain(tree.body[-1], scope, candidate, timeout) if tree.body else {})}
    except BaseException as exc:  # noqa: BLE001
        return {**outcome, "passed": False, **_failure(exc)}
    return {**outcome, "passed": True}


def _statement_at(tree: ast.Module, source: str, lineno: int):
    """The innermost statement spanning ``lineno`` and its text on one line (asserts span lines)."""
    best = None
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and node.lineno <= lineno <= (node.end_lineno or node.lineno):
            if best is None or node.lineno >= best.lineno:
                best = node
    if best is None:
        return None, ""
    text = " ".join((ast.get_source_segment(source, best) or "").split())
    return best, text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def run_check(scope: dict, candidate: Candidate, entry: Proxy, test_code: str, timeout: float,
              explain_s: float) -> dict:
    candidate.deadline = time.monotonic() + timeout
    try:
        exec(compile(test_code, TESTS, "exec"), scope)
        scope["check"](entry)
    except BaseException as exc:  # noqa: BLE001
        frames = [(f, n) for f, n in traceback.walk_tb(exc.__traceback__) if f.f_code.co_filename == TESTS]
        if not frames:
            return {"label": "check(candidate)", "passed": False, **_failure(exc)}
        frame, lineno = frames[-1]
        node, text = _statement_at(ast.parse(test_code), test_code, lineno)
        label = text if isinstance(node, ast.Assert) else f"line {lineno} of the tests: {text}"
        outcome = {"label": label, "passed": False}
        if isinstance(exc, AssertionError):
            return {**outcome, **_explain(node, frame.f_globals, candidate, explain_s, frame.f_locals)}
        return {**outcome, **_failure(exc)}
    return {"label": "check(candidate)", "passed": True}


def _free_names(sources: list) -> set:
    """Names the test code reads: the candidate's functions it may call."""
    names: set = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                names.add(node.id)
    return names


def _runner_scope(spec: dict, candidate: Candidate) -> dict:
    """The tests' namespace: the trusted preamble and setup, then proxies for the other names."""
    scope = {"__name__": "tests", "__builtins__": builtins}
    for part in (spec.get("preamble"), spec.get("setup_code")):
        if part:
            exec(compile(part, "<preamble>", "exec"), scope)
    sources = list(spec.get("tests") or []) if spec["kind"] == "assert" else [spec.get("test_code") or ""]
    for name in _free_names(sources):
        if name not in scope and not hasattr(builtins, name):
            scope[name] = Proxy(candidate, name)
    if spec.get("entry_point"):  # the function under test, even where its name is a builtin's
        scope[spec["entry_point"]] = Proxy(candidate, spec["entry_point"])
    return scope


def _load_problem(answer: dict) -> dict:
    """The report entry for a candidate that did not load (syntax, load error, missing entry point)."""
    kind = answer.get("kind")
    if kind == "syntax_error":
        return {"syntax_error": {"msg": _text(answer.get("msg")), "line": _int(answer.get("line")),
                                 "offset": _int(answer.get("offset")), "text": _text(answer.get("text"))}}
    if kind == "load_error":
        return {"load_error": {"error": _text(answer.get("error")), "traceback": _opt_text(answer.get("traceback")),
                               "timed_out": answer.get("timed_out") is True}}
    if kind == "missing":
        defined = answer.get("defined")
        names = [_text(n) for n in defined[:50]] if type(defined) is list else []
        return {"missing": _text(answer.get("name")), "defined": names}
    return {"load_error": {"error": "your program's test process broke the protocol"}}


def _int(value) -> int | None:
    return value if type(value) is int else None


def _opt_text(value) -> str | None:
    return value[: MAX_REPR * 4] if type(value) is str else None


def _post_calls(spec: dict, calls: list, candidate: Candidate) -> bool:
    """Send every ``call`` test ahead (one wake-up per answer instead of two per call) when they
    fit in a pipe's buffer; True if they were sent."""
    messages = [call_message(spec["entry_point"], args, kwargs) for args, kwargs, _ in calls]
    if not messages or sum(len(json.dumps(m)) for m in messages) > PIPELINE_BYTES:
        return False
    for message in messages:
        candidate.post(message, spec["test_timeout_s"])
    return True


def run(spec: dict, candidate: Candidate) -> dict:
    report: dict = {"tests": []}
    try:
        candidate.post({"op": "load", "preamble": spec.get("preamble", ""), "setup_code": spec.get("setup_code", ""),
                        "entry_point": spec.get("entry_point")}, spec["load_timeout_s"])
        calls = [parse_call(test) for test in spec["tests"]] if spec["kind"] == "call" else []
        posted = _post_calls(spec, calls, candidate)
        answer = candidate.answer()
    except CandidateTimeout:
        report["load_error"] = {"error": "timed out while defining your code", "timed_out": True}
        return report
    except CandidateGone as exc:
        report["load_error"] = {"error": str(exc)}
        return report
    if answer.get("kind") != "loaded":
        report.update(_load_problem(answer))
        return report
    try:
        scope = _runner_scope(spec, candidate)
    except BaseException as exc:  # noqa: BLE001 - the task's own code: not the candidate's fault
        report["harness_error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:MAX_REPR * 4]
        return report
    timeout, name = spec["test_timeout_s"], spec.get("entry_point")
    if spec["kind"] == "check":
        report["tests"].append(run_check(scope, candidate, scope[name], spec["test_code"], spec["check_timeout_s"],
                                         timeout))
    elif spec["kind"] == "assert":
        report["tests"] = [run_assert(scope, candidate, test, timeout) for test in spec["tests"]]
    else:
        report["tests"] = [run_call(candidate, str(name), call, timeout, posted=posted) for call in calls]
    return report


def _protect_runner() -> None:
    """Out of the candidate's reach: not dumpable (no ptrace, no /proc/<pid>/mem|fd|environ)."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def _read_stdin() -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def main() -> None:
    """The runner: fork the candidate, then read the nonce and the tests from stdin, run, report."""
    _protect_runner()
    candidate = _fork_candidate()
    for name in _IGNORED:
        if hasattr(_signal, name):
            _signal.signal(getattr(_signal, name), _signal.SIG_IGN)
    cwd = os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", ".", cwd)]  # never import what the candidate wrote
    os.chdir("/")
    nonce, _, spec_text = _read_stdin().decode("utf-8").partition("\n")
    spec = json.loads(spec_text)
    try:
        report = run(spec, candidate)
    finally:
        candidate.kill(wait=False)  # the sandbox reaps it after the run: off the report's path
    report["stdout"] = candidate.output_text()
    _write_all(1, (f"\n@@result-{nonce.strip()}@@" + json.dumps(report) + "\n").encode())


if __name__ == "__main__":
    main()
