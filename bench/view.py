"""Run viewer benchmark: page latency of ``selfgym view`` over a store of 100,000 trajectories.

Builds (once, cached under the temp dir) a synthetic loop run with the store's schema: 50
iterations, 100,000 trajectories of 1-3 turns each with realistic sizes (observations of 200-1200
characters, actions of 60-600, 150-900 prompt token ids, 20-160 completion ids and log-probs),
generated tasks with their lineage, skills with versions, reflections, metrics and held-out
evaluations with per-task outcomes. Then starts ``selfgym view`` on it (a separate process, on
loopback) and prints p50/p95 latency of each page and of a filtered, sorted table page (target:
p95 < 300 ms), the server's resident memory, and, as the baseline measured in the same run, the time
``selfgym report`` (``write_report``) takes on the same store.

    python bench/view.py               # 100,000 trajectories (the first build takes a few minutes)
    python bench/view.py --n 5000      # a quick look
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from selfgym.store import Store

RUN = "bench"
ITERATIONS = 50
FAMILIES = ("arithmetic", "strings", "lists", "dicts", "recursion", "generated")
WORDS = ("def return value list index the for in if else while result count total string append range len "
         "assert error expected got test passed failed line column sum max min sorted reversed split join").split()
NEEDLE = "zebrafish_marker"  # in one action out of a thousand, for the text search


def _text(rng: random.Random, lo: int, hi: int) -> str:
    size, out = rng.randint(lo, hi), []
    while sum(len(w) + 1 for w in out) < size:
        out.append(rng.choice(WORDS))
    return " ".join(out)


def build(path: Path, n: int, seed: int = 0) -> None:
    """Write the synthetic run into ``path`` (a run directory): schema by ``Store``, rows in bulk."""
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    with Store(path) as store:
        store.create_run(RUN, {"name": RUN, "iterations": ITERATIONS, "policy": {"model": "embedded"},
                               "trainer": {"algorithm": "grpo"}}, kind="loop")
    db = sqlite3.connect(path / "store.sqlite", isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    now = time.time() - 86400
    observations = [_text(rng, 200, 1200) for _ in range(1500)]
    actions = [_text(rng, 60, 600) for _ in range(1500)]
    n_tasks = max(50, n // 8)
    tasks = []
    for i in range(n_tasks):
        family = FAMILIES[i % (len(FAMILIES) - 1)]
        tasks.append((f"{family}/t{i}", family, "train", round(rng.choice((0.0, 0.25, 0.5, 0.75, 1.0)), 2),
                      f"procedural:{family}", None, _text(rng, 80, 400), "{}", RUN, now))
    for i in range(max(5, n // 500)):
        parent = tasks[rng.randrange(len(tasks))]
        generator = {"teacher_id": f"{RUN}/teacher", "run_id": RUN, "iteration": 1 + i % (ITERATIONS - 1),
                     "target_family": parent[1], "pass_rate": rng.random(), "solver_attempts": 4, "learnability": 0.5}
        tasks.append((f"generated/g{i}", "generated", "generated", 0.5, f"teacher:{RUN}/teacher", parent[0],
                      _text(rng, 80, 400), json.dumps({"generator": generator}), RUN, now))
    db.executemany("INSERT INTO tasks VALUES (?,?,?,?,?,?,?,?,?,?)", tasks)
    per_iteration = max(1, n // ITERATIONS)
    traj_rows, turn_rows = [], []
    for i in range(n):
        it, task = min(i // per_iteration, ITERATIONS - 1), tasks[(i // 4) % len(tasks)]
        success, aborted = rng.random() < 0.2 + 0.5 * it / ITERATIONS, "sandbox crashed" if rng.random() < 0.01 else None
        n_turns = rng.randint(1, 3)
        tid = f"traj-{i:08x}"
        record = {"task_id": task[0], "env_id": "selfgym/Code-v0", "id": tid, "policy_id": f"ckpt-{it}", "run_id": RUN,
                  "iteration": it, "attempt": i % 4, "seed": i, "instructions": "", "success": success,
                  "total_reward": float(success), "terminated": True, "truncated": False, "aborted": aborted,
                  "memory": {"skill": [f"skill:skill_{i % 100}@v1"], "reflection": [f"refl-{i % 2000}"]},
                  "started_at": now + i, "duration_s": rng.random() * 5, "info": {"final_observation": "tests passed"}}
        traj_rows.append((tid, RUN, task[0], "selfgym/Code-v0", f"ckpt-{it}", it, i % 4, int(success), float(success),
                          aborted, n_turns, now + i, json.dumps(record), 1))
        for k in range(n_turns):
            n_completion = int(nrng.integers(20, 161))
            action = actions[rng.randrange(len(actions))] + (f" {NEEDLE}" if i % 1000 == 7 else "")
            turn_rows.append((tid, k, observations[rng.randrange(len(observations))], action, float(success),
                              nrng.integers(0, 49152, int(nrng.integers(150, 901))).tobytes(),
                              nrng.integers(0, 49152, n_completion).tobytes(),
                              (-nrng.exponential(1.0, n_completion)).tobytes(), None, "{}"))
        if len(traj_rows) >= 5000:
            db.executemany("INSERT INTO trajectories VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", traj_rows)
            db.executemany("INSERT INTO turns VALUES (?,?,?,?,?,?,?,?,?,?)", turn_rows)
            traj_rows, turn_rows = [], []
    db.executemany("INSERT INTO trajectories VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", traj_rows)
    db.executemany("INSERT INTO turns VALUES (?,?,?,?,?,?,?,?,?,?)", turn_rows)
    _run_records(db, rng, tasks, now)
    db.execute("COMMIT")
    db.close()


def _run_records(db: sqlite3.Connection, rng: random.Random, tasks: list[tuple], now: float) -> None:
    """Metrics, held-out evaluations, checkpoints, skills (with versions), reflections."""
    rows = []
    for it in range(ITERATIONS):
        values = {"train/success": 0.2 + 0.5 * it / ITERATIONS, "train/episodes": 2000.0, "tokens/rollout": 2e5,
                  "time/rollout_s": 60.0, "time/train_s": 30.0, "time/iteration_s": 100.0, "teacher/proposed": 8.0,
                  "teacher/valid": 4.0, "teacher/accepted": 2.0, "skills/size": float(it), "time/eval_s": 20.0}
        rows += [(RUN, it, k, v, now) for k, v in values.items()]
    db.executemany("INSERT INTO metrics VALUES (?,?,?,?,?)", rows)
    heldout = [f"heldout/h{i}" for i in range(200)]
    for it in range(0, ITERATIONS + 1, 5):
        p = 0.2 + 0.5 * it / ITERATIONS
        outcomes = {h: [rng.random() < p] for h in heldout}
        rate = float(np.mean([o[0] for o in outcomes.values()]))
        metrics = {"n_tasks": 200, "k": 1, "success_rate": rate, "ci95": [rate - 0.06, rate + 0.06],
                   "pass_at_k": {"pass@1": rate}, "aborted": 0, "by_family": {}, "by_difficulty": {}, "outcomes": outcomes}
        db.execute("INSERT INTO eval_results (run_id, checkpoint_id, env_id, split, iteration, metrics, created_at, slot)"
                   " VALUES (?,?,?,?,?,?,?,1)", (RUN, f"ckpt-{it}", "selfgym/Code-v0", "heldout", it, json.dumps(metrics), now))
    db.executemany("INSERT INTO checkpoints VALUES (?,?,?,?,?,?,?)",
                   [(f"ckpt-{it}", RUN, it, f"checkpoints/{it}", f"ckpt-{it - 1}" if it else None, "{}", now)
                    for it in range(ITERATIONS)])
    memory, usage = [], {}
    for s in range(100):
        for version in (1, 2):
            code = f"def skill_{s}(x):\n    return x + {version}\n"
            content = {"name": f"skill_{s}", "description": _text(rng, 20, 60), "code": code, "signature": f"skill_{s}(x)",
                       "tests": f"assert skill_{s}(1) == {1 + version}", "source_trajectory_id": f"traj-{s * 97:08x}",
                       "source_task_id": tasks[s][0], "version": version, "status": "active"}
            memory.append((f"skill-{s}-{version}", "skill", f"skill_{s}", version, RUN, json.dumps(content), now))
            usage[f"skill:skill_{s}@v{version}"] = [rng.randint(0, 50), rng.randint(0, 20)]
    for r in range(2000):
        content = {"task_id": tasks[r % len(tasks)][0], "family": tasks[r % len(tasks)][1], "text": _text(rng, 40, 300),
                   "task_prompt": "", "trajectory_id": f"traj-{r:08x}", "policy_id": "ckpt-0"}
        memory.append((f"refl-{r}", "reflection", content["task_id"], 1, RUN, json.dumps(content), now))
    db.executemany("INSERT INTO memory VALUES (?,?,?,?,?,?,?)", memory)
    db.execute("INSERT INTO state VALUES (?,?,?,?)", (RUN, "skills/usage", json.dumps(usage), now))
    db.execute("INSERT INTO state VALUES (?,?,?,?)", (RUN, "iteration", str(ITERATIONS), now))


def cached_store(n: int) -> tuple[Path, float | None]:
    """The bench's run directory for ``n`` trajectories, built when missing; returns the build time."""
    folder = Path(tempfile.gettempdir()) / f"selfgym-bench-view-{n}" / "bench"  # the viewer names it "bench"
    if (folder / "built").is_file():
        return folder, None
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    build(folder, n)
    (folder / "built").write_text("ok")
    return folder, time.perf_counter() - start


def _pages(n: int) -> dict[str, list[str]]:
    """Page name -> URLs to cycle through (different ids on each request where a page takes one)."""
    rng = random.Random(1)
    trajs = [f"traj-{rng.randrange(n):08x}" for _ in range(50)]
    q = f"run={RUN}"
    return {
        "runs": ["/"],
        "run + timeline": [f"/s/bench/run?{q}"],
        "live figures": [f"/s/bench/run/live?{q}"],
        "table (first page)": [f"/s/bench/trajectories?{q}"],
        "table filtered+sorted": [f"/s/bench/trajectories?{q}&iteration={it}&success=0&family=strings&sort=reward"
                                  f"&order=asc&page=2&per=20" for it in range(0, ITERATIONS, 7)],
        "table split+difficulty, sorted by task": [f"/s/bench/trajectories?{q}&split=train&difficulty=0.5&sort=task"
                                                  f"&page={p}" for p in (1, 5, 20)],
        "table text search": [f"/s/bench/trajectories?{q}&q={NEEDLE}"],
        "trajectory": [f"/s/bench/trajectory/{t}" for t in trajs],
        "compare": [f"/s/bench/compare?a={a}&b={b}" for a, b in zip(trajs, trajs[1:], strict=False)],
        "task (generated, lineage)": [f"/s/bench/task?id=generated/g{i}" for i in range(5)],
        "skills": [f"/s/bench/skills?{q}"],
        "skill (versions, diff)": [f"/s/bench/skill/skill_{i}?{q}" for i in range(0, 100, 9)],
        "teacher": [f"/s/bench/teacher?{q}"],
        "evals (paired, 200 tasks)": [f"/s/bench/evals?{q}"],
        "reflections": [f"/s/bench/reflections?{q}"],
    }


def _serve(run_dir: Path) -> tuple[subprocess.Popen, int]:
    """``selfgym view`` on a free loopback port, as a user starts it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = str(Path(sys.executable).parent / "selfgym")
    proc = subprocess.Popen([exe, "view", str(run_dir), "--port", str(port)], stdout=subprocess.DEVNULL)
    return proc, port


class _Client:
    """One keep-alive HTTP connection to the viewer (the standard library's, so timing is the server's)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def get(self, url: str) -> tuple[int, bytes]:
        try:
            self.conn.request("GET", url)
            r = self.conn.getresponse()
            return r.status, r.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="trajectories in the synthetic store")
    parser.add_argument("--repeat", type=int, default=20, help="requests per page")
    args = parser.parse_args()
    import psutil

    run_dir, build_s = cached_store(args.n)
    size = (run_dir / "store.sqlite").stat().st_size
    built = f"built in {build_s:.0f} s" if build_s is not None else "cached"
    print(f"store: {args.n} trajectories, {size / 2**20:.0f} MiB ({built}) at {run_dir}")
    proc, port = _serve(run_dir)
    try:
        client = _Client(port)
        deadline = time.monotonic() + 60
        while True:
            try:
                client.get("/healthz")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        start = time.perf_counter()
        client.get(f"/s/bench/trajectories?run={RUN}")
        print(f"first table page after start: {time.perf_counter() - start:.2f} s (the copy of the small columns "
              "into memory, once per process)")
        print(f"{'page':42s} {'p50 ms':>8s} {'p95 ms':>8s} {'max ms':>8s}")
        worst = 0.0
        for name, urls in _pages(args.n).items():
            client.get(urls[0])  # warm the page cache for this page
            times = []
            for i in range(args.repeat):
                start = time.perf_counter()
                status, body = client.get(urls[i % len(urls)])
                times.append((time.perf_counter() - start) * 1000)
                assert status == 200, f"{urls[i % len(urls)]}: {status} {body[:300]!r}"
            p50, p95 = np.percentile(times, [50, 95])
            worst = max(worst, p95)
            print(f"{name:42s} {p50:8.1f} {p95:8.1f} {max(times):8.1f}")
        start = time.perf_counter()
        status, body = client.get(f"/s/bench/trajectories?run={RUN}&iteration=3&format=jsonl")
        jsonl_s = time.perf_counter() - start
        lines = body.count(b"\n")
        print(f"JSONL download of one iteration: {lines} trajectories, {len(body) / 2**20:.1f} MiB "
              f"in {jsonl_s:.2f} s")
        info = psutil.Process(proc.pid)
        rss = info.memory_info().rss
        print(f"worst page p95: {worst:.0f} ms (target < 300 ms): {'ok' if worst < 300 else 'OVER'}")
        print(f"viewer process RSS after the run: {rss / 2**20:.0f} MiB (store {size / 2**20:.0f} MiB)")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    from selfgym.run.report import write_report

    start = time.perf_counter()
    write_report(run_dir, RUN)
    report_s = time.perf_counter() - start
    print(f"baseline: selfgym report (write_report) on the same store: {report_s:.2f} s "
          f"= {report_s * 1000 / worst:.0f}x the viewer's worst page p95")


if __name__ == "__main__":
    main()
