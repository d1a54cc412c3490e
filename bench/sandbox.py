"""Sandbox benchmark: exec latency and throughput of each backend, warm pool vs cold starts.

Baseline, measured in the same run: a cold ``subprocess.run([python, "-c", snippet])`` (no
isolation at all). For every backend that works here: a cold exec (a fresh sandbox per call), the
warm pool back-to-back and with a little think time between calls (how an env uses it: the model
generates between steps), and the pool's throughput with one client thread per worker. Last, whole
``Code-v0`` steps (oracle submissions verified against the hidden tests).

    python bench/sandbox.py            # about a minute
    python bench/sandbox.py --quick    # a few seconds, small samples

Targets from the design: the warm pool >= 25x cheaper than the cold subprocess, >= 1000 execs/s
on 2 cores, with full isolation (bwrap).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from selfgym.envs.code.sandbox import SandboxConfig, available_backends, make_sandbox

SNIPPET = "print(1 + 1)"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(call: Callable[[], object], n: int, think_s: float = 0.0) -> list[float]:
    """Latencies of ``n`` calls, in seconds (``think_s`` of idle time before each)."""
    latencies = []
    for _ in range(n):
        if think_s:
            time.sleep(think_s)
        start = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - start)
    return latencies


def throughput(call: Callable[[], object], n: int, threads: int) -> float:
    """Calls per second with ``threads`` clients."""
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: call(), range(n)))
    return n / (time.perf_counter() - start)


def _tree_cpu_s(roots: list[int]) -> float:
    """CPU seconds of the processes under ``roots`` (the pool's workers), reaped children included."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, frontier = set(roots), list(roots)
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier and pid not in tree]
        tree.update(children)
        frontier = children
    total = 0.0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime
        except (OSError, ValueError):
            continue
    return total


def cpu_per_exec(sandbox, n: int) -> float:
    """CPU seconds one exec costs, host and sandbox processes together (robust to a busy machine)."""
    roots = sandbox.worker_pids()
    sandbox_before, host_before = _tree_cpu_s(roots), time.process_time()
    for _ in range(n):
        sandbox.exec(SNIPPET)
    return (_tree_cpu_s(roots) - sandbox_before + time.process_time() - host_before) / n


def row(label: str, latencies: list[float], baseline_p50: float | None) -> str:
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    ratio = f"{baseline_p50 / p50:7.1f}x" if baseline_p50 else "   1.0x"
    return f"{label:44s} p50 {p50 * 1e3:8.2f} ms  p95 {p95 * 1e3:8.2f} ms  {1 / statistics.mean(latencies):8.0f}/s  {ratio}"


def bench_backend(name: str, n: int, baseline_p50: float, threads: int) -> dict[str, float]:
    """Print the rows of one backend; return its warm p50 and throughput."""
    with make_sandbox(SandboxConfig(backend=name, pool_size=0)) as cold:
        print(row(f"{name}: cold (a new sandbox per exec)", timed(lambda: cold.exec(SNIPPET), max(n // 10, 5)),
                  baseline_p50))
    with make_sandbox(SandboxConfig(backend=name, pool_size=threads)) as warm:
        timed(lambda: warm.exec(SNIPPET), 20)  # warm-up
        back_to_back = timed(lambda: warm.exec(SNIPPET), n)
        print(row(f"{name}: warm pool, back to back", back_to_back, baseline_p50))
        think = timed(lambda: warm.exec(SNIPPET), max(n // 3, 10), think_s=0.005)
        print(row(f"{name}: warm pool, 5 ms think time between", think, baseline_p50))
        rate = throughput(lambda: warm.exec(SNIPPET), n * 3, threads)
        print(f"{name + f': warm pool, {threads} client threads':44s} {rate:8.0f} execs/s")
    with make_sandbox(SandboxConfig(backend=name, pool_size=1, max_uses=10 * n)) as single:
        timed(lambda: single.exec(SNIPPET), 20)
        cpu = cpu_per_exec(single, n)  # one worker that is not recycled while measured
        cores = os.cpu_count() or 1
        print(f"{name + ': CPU per exec (host + sandbox)':44s} {cpu * 1e3:8.2f} ms  -> at most {cores / cpu:.0f} "
              f"execs/s on {cores} idle cores")
        assert single.exec(SNIPPET).stdout == "2\n"
    return {"p50": percentile(think, 0.5), "p50_back_to_back": percentile(back_to_back, 0.5), "rate": rate,
            "cpu": cpu}


def bench_env(n: int, baseline_p50: float) -> None:
    """Code-v0 steps (oracle submissions) with the two-process harness, then the same verifications
    with the single-process harness it replaced (the cost of keeping the verdict out of reach)."""
    import gymnasium
    from reward_hacking import LEGACY, LEGACY_MODULE, legacy_verify

    import selfgym  # noqa: F401 - registers the envs
    from selfgym.envs.code.verifier import HARNESS_MODULE, VerifierConfig, harness_source, verify

    env = gymnasium.make("selfgym/Code-v0")
    latencies, verify_new, verify_old, jobs = [], [], [], []
    for seed in range(n):
        env.reset(seed=seed)
        action = env.unwrapped.oracle_action()
        start = time.perf_counter()
        _, reward, *_ = env.step(action)
        latencies.append(time.perf_counter() - start)
        assert reward == 1.0
        jobs.append((env.unwrapped.last_code, env.unwrapped.task.payload))
    env.close()
    print(row("Code-v0 step (verify ~5-15 hidden tests)", latencies, baseline_p50))
    config = SandboxConfig(pool_size=2, modules=((LEGACY_MODULE, LEGACY), (HARNESS_MODULE, harness_source())))
    with make_sandbox(config) as box:
        for _ in range(2):  # interleaved rounds: both harnesses see the same machine load
            for code, payload in jobs:
                start = time.perf_counter()
                assert verify(box, code, payload, VerifierConfig()).passed
                verify_new.append(time.perf_counter() - start)
                start = time.perf_counter()
                assert legacy_verify(box, code, payload, VerifierConfig()).passed
                verify_old.append(time.perf_counter() - start)
    old_p50, new_p50 = percentile(verify_old, 0.5), percentile(verify_new, 0.5)
    print(row("verify, single-process harness (before)", verify_old, baseline_p50))
    print(row("verify, runner + candidate processes (now)", verify_new, baseline_p50))
    print(f"{'':44s} the split costs {(new_p50 - old_p50) * 1e3:+.2f} ms per verification "
          f"({new_p50 / old_p50:.2f}x the single-process p50)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small samples (a few seconds)")
    parser.add_argument("--workers", type=int, default=0,
                        help="warm workers and client threads (default: twice the cores, so that one worker's "
                             "serial steps overlap another's)")
    args = parser.parse_args()
    n = 60 if args.quick else 600
    threads = args.workers or 2 * (os.cpu_count() or 1)
    warnings.simplefilter("ignore", RuntimeWarning)  # the process backend's no-isolation warning
    print(f"sandbox benchmark: {os.cpu_count()} cores, {threads} workers, snippet {SNIPPET!r}")
    print(f"{'':44s} {'latency':>15s} {'':>16s} {'rate':>10s}  vs cold subprocess")
    cold = timed(lambda: subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, check=True),
                 max(n // 10, 10))
    print(row("baseline: cold subprocess.run(python -c)", cold, None))
    baseline = percentile(cold, 0.5)
    isolated = timed(lambda: subprocess.run([sys.executable, "-I", "-S", "-c", SNIPPET], capture_output=True),
                     max(n // 10, 10))
    print(row("         cold subprocess.run(python -I -S -c)", isolated, baseline))
    results = {}
    for name, reason in available_backends().items():
        if reason is not None:
            print(f"{name}: not available here ({reason.splitlines()[0][:80]})")
            continue
        results[name] = bench_backend(name, n, baseline, threads)
    bench_env(max(n // 6, 10), baseline)
    if "bwrap" in results:
        bwrap = results["bwrap"]
        print(f"\nbwrap warm pool vs cold subprocess: {baseline / bwrap['p50']:.1f}x with think time, "
              f"{baseline / bwrap['p50_back_to_back']:.1f}x back to back (target 25x); "
              f"{bwrap['rate']:.0f} execs/s measured with {threads} threads, {(os.cpu_count() or 1) / bwrap['cpu']:.0f}"
              f" execs/s from the CPU cost (target 1000/s). Load average now: {os.getloadavg()[0]:.1f}.")


if __name__ == "__main__":
    main()
