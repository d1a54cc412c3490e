"""Env steps through ``selfgym serve`` against in-process steps and OpenEnv's own ``create_app``.

For Guess-v0, Tools-v0 and Code-v0 at 1, 8, 64 and 256 concurrent WebSocket sessions: steps/s and
p50/p95 step latency (round trip seen by the client), errors, and the server's memory per idle
session. Both servers run the same selfgym env in a subprocess; the clients run here on asyncio.
OpenEnv's server wraps the env in an ``openenv.core.env_server.Environment`` (bench only: needs the
``openenv`` extra). Every session steps a fixed action and resets when its episode ends.

    python bench/serve.py            # the full matrix (a few minutes on 2 cores)
    python bench/serve.py --quick    # 1 and 64 sessions, shorter runs

Targets: step overhead over in-process <= 1 ms at p50 (one session); 0 errors at 256 sessions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

ACTIONS = {
    "selfgym/Guess-v0": "1",
    "selfgym/Tools-v0": '{"name": "search", "arguments": {"query": "backpack"}}',
    "selfgym/Code-v0": "```python\ndef f(x):\n    return x\n```",
}


@dataclass
class Result:
    steps: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    idle_mb_per_session: float | None = None

    @property
    def rate(self) -> float:
        return self.steps / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ----------------------------------------------------------------------------- in-process baseline
def in_process(env_id: str, seconds: float) -> Result:
    import selfgym

    env = selfgym.make(env_id, disable_env_checker=True)
    env.reset(seed=0)
    result, action = Result(), ACTIONS[env_id]
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        t = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(action)
        result.latencies.append(time.perf_counter() - t)
        result.steps += 1
        if terminated or truncated:
            env.reset(seed=result.steps)
    result.seconds = time.perf_counter() - started
    env.close()
    return result


# ----------------------------------------------------------------------------- servers
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(kind: str, env_id: str, max_sessions: int) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    if kind == "selfgym":
        cmd = [sys.executable, "-m", "selfgym.cli", "serve", env_id, "--port", str(port),
               "--max-sessions", str(max_sessions)]
    else:
        cmd = [sys.executable, __file__, "--openenv-server", env_id, "--port", str(port),
               "--max-sessions", str(max_sessions)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{kind} server for {env_id} did not start")


def server_rss_mb(pid: int) -> float:
    """Resident memory of the server and its children (sandbox workers), MiB."""
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def openenv_server(env_id: str, port: int, max_sessions: int) -> None:
    """OpenEnv's own server (``create_app``) wrapping the selfgym env: the comparison point."""
    import uvicorn
    from openenv.core.env_server import Action, Environment, Observation, State, create_app

    import selfgym

    class TextAction(Action):
        message: str

    class TextObservation(Observation):
        text: str

    class Wrapped(Environment):
        SUPPORTS_CONCURRENT_SESSIONS = True

        def __init__(self) -> None:
            super().__init__()
            self.env = selfgym.make(env_id, disable_env_checker=True)
            self.steps = 0

        def reset(self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any) -> TextObservation:
            observation, info = self.env.reset(seed=seed)
            self.steps = 0
            return TextObservation(text=observation, metadata={"task": info["task"].to_dict()})

        def step(self, action: TextAction, timeout_s: float | None = None, **kwargs: Any) -> TextObservation:
            observation, reward, terminated, truncated, info = self.env.step(action.message)
            self.steps += 1
            return TextObservation(text=observation, reward=float(reward), done=terminated or truncated,
                                   metadata={"success": info.get("success")})

        @property
        def state(self) -> State:
            return State(step_count=self.steps)

        def close(self) -> None:
            self.env.close()

    app = create_app(Wrapped, TextAction, TextObservation, max_concurrent_envs=max_sessions)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# ----------------------------------------------------------------------------- clients
async def drive(port: int, env_id: str, sessions: int, seconds: float, memory_pid: int | None) -> Result:
    from websockets.asyncio.client import connect

    result, action = Result(), json.dumps({"type": "step", "data": {"message": ACTIONS[env_id]}})
    opened = await asyncio.gather(*(_open(connect, port, i) for i in range(sessions)), return_exceptions=True)
    conns = [c for c in opened if not isinstance(c, BaseException)]
    result.errors += len(opened) - len(conns)
    if memory_pid is not None and conns:
        result.idle_mb_per_session = server_rss_mb(memory_pid)  # sessions open and reset, idle
    stop = time.perf_counter() + seconds
    started = time.perf_counter()

    async def session(ws: Any, index: int) -> None:
        episode = 0
        while time.perf_counter() < stop:
            t = time.perf_counter()
            try:
                await ws.send(action)
                reply = json.loads(await ws.recv())
            except Exception:  # noqa: BLE001 - counted
                result.errors += 1
                return
            if reply.get("type") != "observation":
                result.errors += 1
                return
            result.latencies.append(time.perf_counter() - t)
            result.steps += 1
            if reply["data"]["done"]:
                episode += 1
                await ws.send(json.dumps({"type": "reset", "data": {"seed": index * 1000 + episode}}))
                await ws.recv()

    await asyncio.gather(*(session(ws, i) for i, ws in enumerate(conns)))
    result.seconds = time.perf_counter() - started
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    return result


async def _open(connect: Any, port: int, index: int) -> Any:
    ws = await connect(f"ws://127.0.0.1:{port}/ws", open_timeout=60, compression=None, max_size=2**24,
                       ping_interval=None, proxy=None)
    await ws.send(json.dumps({"type": "reset", "data": {"seed": index}}))
    reply = json.loads(await ws.recv())
    if reply.get("type") != "observation":
        raise RuntimeError(reply)
    return ws


def measure(kind: str, env_id: str, sessions: int, seconds: float) -> Result:
    proc, port = start_server(kind, env_id, max(sessions, 1))
    try:
        base = server_rss_mb(proc.pid)
        result = asyncio.run(drive(port, env_id, sessions, seconds, proc.pid))
        if result.idle_mb_per_session is not None:
            result.idle_mb_per_session = (result.idle_mb_per_session - base) / sessions
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


# ----------------------------------------------------------------------------- report
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 and 64 sessions, 1.5 s runs")
    parser.add_argument("--seconds", type=float, default=None, help="seconds of stepping per cell")
    parser.add_argument("--envs", nargs="*", default=list(ACTIONS))
    parser.add_argument("--sessions", nargs="*", type=int, default=None)
    parser.add_argument("--openenv-server", metavar="ENV_ID", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--max-sessions", type=int, default=256, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.openenv_server:
        openenv_server(args.openenv_server, args.port, args.max_sessions)
        return
    try:
        import openenv  # noqa: F401

        kinds = ["selfgym", "openenv"]
    except ImportError:
        print("openenv-core is not installed (pip install 'selfgym[openenv]'): selfgym server only")
        kinds = ["selfgym"]
    seconds = args.seconds or (1.5 if args.quick else 4.0)
    counts = args.sessions or ([1, 64] if args.quick else [1, 8, 64, 256])
    header = (f"{'env':<10} {'sess':>4} | {'in-proc/s':>9} {'p50':>6} | {'selfgym/s':>9} {'p50':>6} {'p95':>7} "
              f"{'err':>3} {'MB/idle':>7} | {'openenv/s':>9} {'p50':>6} {'p95':>7} {'err':>3} {'MB/idle':>7} | "
              f"{'sg/oe':>5}")
    print(header)
    print("-" * len(header))
    overheads = []
    for env_id in args.envs:
        local = in_process(env_id, seconds)
        for n in counts:
            cells = {kind: measure(kind, env_id, n, seconds) for kind in kinds}
            sg, oe = cells["selfgym"], cells.get("openenv")
            if n == 1:
                overheads.append((env_id, sg.pct(0.5) - local.pct(0.5), oe.pct(0.5) - local.pct(0.5) if oe else None))
            row = (f"{env_id.split('/')[1]:<10} {n:>4} | {local.rate:>9.0f} {local.pct(0.5):>6.2f} | "
                   f"{sg.rate:>9.0f} {sg.pct(0.5):>6.2f} {sg.pct(0.95):>7.2f} {sg.errors:>3} "
                   f"{sg.idle_mb_per_session or 0:>7.2f} | ")
            if oe is not None:
                row += (f"{oe.rate:>9.0f} {oe.pct(0.5):>6.2f} {oe.pct(0.95):>7.2f} {oe.errors:>3} "
                        f"{oe.idle_mb_per_session or 0:>7.2f} | {sg.rate / oe.rate if oe.rate else float('nan'):>5.2f}")
            print(row, flush=True)
    print("\nlatencies in ms (client round trip). MB/idle: server RSS growth (with its child processes) per open\n"
          "session, made and reset but not stepped yet (a code sandbox worker starts at the first step; at 1\n"
          "session the figure includes the server's first-use imports)")
    for env_id, sg_over, oe_over in overheads:
        extra = f", openenv {oe_over:+.2f} ms" if oe_over is not None else ""
        verdict = "ok" if sg_over <= 1.0 else "ABOVE the 1 ms target"
        print(f"{env_id}: 1-session p50 over in-process: selfgym {sg_over:+.2f} ms ({verdict}){extra}")


if __name__ == "__main__":
    main()
