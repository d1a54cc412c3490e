"""Ray rollouts called again and again, as the loop's stages do: workers started by every call vs
workers kept across calls (``RayRollouts(keep_workers=True)``, what ``[rollout] backend = "ray"`` uses).

Each side makes ``--calls`` calls of ``--tasks`` episodes of the scripted agent on ``--workers``
local Ray workers, per env; the first call of the kept pool starts its workers like any call, the
later ones reuse the processes and the envs (a warm sandbox pool for ``Code-v0``). It prints the
per-call wall time (median of the calls after the first) of both and the ratio (target > 1: the kept
pool is faster), and checks that both played the same episodes.

Run: ``python bench/ray_pool.py [--calls 4] [--tasks 4] [--workers 2] [--envs selfgym/Guess-v0,selfgym/Code-v0]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from selfgym.agents.base import ScriptedAgent
from selfgym.run.distributed import RayConfig, RayRollouts, ensure_ray
from selfgym.run.rollout import RolloutConfig


def calls(env: str, keep: bool, n_calls: int, tasks: int, workers: int) -> tuple[list[float], list[list[bool]]]:
    """Per-call wall times and each call's outcomes."""
    times, outcomes = [], []
    with RayRollouts(RayConfig(workers=workers), keep_workers=keep) as pool:
        for _ in range(n_calls):
            start = time.perf_counter()
            result = pool(env, ScriptedAgent, tasks, RolloutConfig(seed=3, progress=False))
            times.append(time.perf_counter() - start)
            outcomes.append([t.success for t in result.trajectories])
    return times, outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--envs", default="selfgym/Guess-v0,selfgym/Code-v0")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = time.perf_counter()
    ensure_ray(RayConfig(workers=args.workers))
    print(f"ray pool bench: {os.cpu_count()} cores, {args.workers} workers, {args.calls} calls x {args.tasks} "
          f"scripted episodes (ray.init {time.perf_counter() - started:.1f} s)")
    for env in args.envs.split(","):
        fresh, fresh_out = calls(env, False, args.calls, args.tasks, args.workers)
        kept, kept_out = calls(env, True, args.calls, args.tasks, args.workers)
        assert fresh_out == kept_out, "the kept pool played other episodes"
        later_fresh, later_kept = statistics.median(fresh[1:]), statistics.median(kept[1:])
        print(f"{env}:\n  workers started by every call: first {fresh[0]:.2f} s, later calls {later_fresh:.2f} s (median)\n"
              f"  workers kept across calls:     first {kept[0]:.2f} s, later calls {later_kept:.2f} s (median)\n"
              f"  ratio started/kept, later calls: {later_fresh / later_kept:.2f}x")


if __name__ == "__main__":
    main()
