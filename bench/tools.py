"""Tool-call overhead of ``selfgym/Tools-v0``: env step vs calling the tool function directly.

One env step = parse the action text + validate the arguments against the JSON Schema + dispatch
(worker thread with a timeout, or inline) + render the result. The baseline, measured in the same
run, calls the same bound tool function with the same arguments. Target: overhead p50 < 1 ms.
The SQL authorizer's cost (``envs/tools/sql.py``, confinement) is timed in the same run: the same
query on a connection with the authorizer and on one without, alternately.

Run: ``python bench/tools.py [--n 3000]``
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable

import selfgym
from selfgym.envs.tools.calls import call_text, parse_tool_action
from selfgym.envs.tools.env import ToolEnv, ToolEnvConfig
from selfgym.envs.tools.shop import ShopTasks
from selfgym.envs.tools.sql import SqlTasks, SqlWorld


def timings(fn: Callable[[], object], n: int) -> list[float]:
    """Seconds per call of ``fn``, ``n`` times after a short warm-up."""
    for _ in range(min(200, n)):
        fn()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if q < 100 else max(values)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:8.1f} us"


def _episode(family: object, task_seed: int, timeout: float | None) -> ToolEnv:
    env = ToolEnv(families=[family], config=ToolEnvConfig(tool_timeout_s=timeout))
    env.reset(seed=0, options={"task": family.make(task_seed, 1.0)})
    return env


def authorizer_cost(n: int) -> tuple[list[float], list[float]]:
    """run_query on a guarded and on an unguarded connection to the same database, interleaved.

    Each call's text differs (a numbered comment), so every statement is compiled, as an agent's
    new query is: the authorizer runs at compile time, and a cached statement would skip it.
    """
    env = _episode(SqlTasks(), 1, None)
    query = "SELECT c.city, SUM(o.quantity) AS units FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.city"
    guarded = env.world.run_query.fn
    bare = SqlWorld(env.world.path)
    bare.reader.set_authorizer(None)
    unguarded = bare.run_query.fn
    numbers = itertools.count()
    with_guard: list[float] = []
    without: list[float] = []
    for _ in range(max(1, n // 100)):
        with_guard += timings(lambda: guarded(sql=f"{query} -- {next(numbers)}"), 100)
        without += timings(lambda: unguarded(sql=f"{query} -- {next(numbers)}"), 100)
    bare.reader.close()
    env.close()
    return with_guard, without


def run(n: int) -> None:
    rows = []
    for timeout, mode in ((5.0, "worker thread"), (None, "inline")):
        env = _episode(ShopTasks(), 1, timeout)
        product = next(iter(env.world.products))
        get_product = env.world.get_product.fn  # the bound method itself: the baseline is a plain call
        direct = timings(lambda f=get_product, pid=product: f(product_id=pid), n)
        action = call_text("get_product", product_id=product)
        step = timings(lambda e=env, a=action: e.step(a), n)
        rows.append((f"get_product, {mode}", direct, step))
        env.close()
        env = _episode(SqlTasks(), 1, timeout)
        query = "SELECT name, email FROM customers WHERE city = 'Oslo'"
        run_query = env.world.run_query.fn
        direct = timings(lambda f=run_query, q=query: f(sql=q), n)
        action = call_text("run_query", sql=query)
        step = timings(lambda e=env, a=action: e.step(a), n)
        rows.append((f"run_query (SQLite), {mode}", direct, step))
        env.close()
    parse = timings(lambda: parse_tool_action(call_text("search_products", query="lamp", max_price=30.0)), n)
    guarded, unguarded = authorizer_cost(n)
    env = ToolEnv(families=[ShopTasks()])
    env.reset(seed=0)
    search = env.unwrapped._toolbox.tools["search_products"]
    validate = timings(lambda: search.check_arguments({"query": "lamp", "max_price": 30.0}), n)
    env.close()

    print(f"tool-call overhead, {n} calls each; overhead = env.step p50 - direct call p50")
    print(f"  {'tool, dispatch':32s} {'direct p50':>12s} {'step p50':>12s} {'step p90':>12s} {'overhead p50':>13s} {'ratio':>7s}")
    for label, direct, step in rows:
        d50, s50 = statistics.median(direct), statistics.median(step)
        print(f"  {label:32s} {us(d50):>12s} {us(s50):>12s} {us(p(step, 90)):>12s} {us(s50 - d50):>13s} "
              f"{s50 / d50:6.1f}x")
    print(f"  parts: parse p50 {us(statistics.median(parse))}, schema validation p50 {us(statistics.median(validate))}")
    print(f"  SQL authorizer: run_query p50 {us(statistics.median(guarded))} with, "
          f"{us(statistics.median(unguarded))} without ({statistics.median(guarded) / statistics.median(unguarded):.2f}x)")
    overhead = max(statistics.median(step) - statistics.median(direct) for _, direct, step in rows)
    verdict = "meets" if overhead < 1e-3 else "MISSES"
    print(f"  largest overhead p50 {overhead * 1e3:.3f} ms: {verdict} the < 1 ms target for in-process tools")
    # a whole multi-step episode, for scale
    env = selfgym.make("selfgym/Tools-v0")
    from selfgym.agents import ScriptedAgent
    from selfgym.run.episode import run_episode

    start, steps = time.perf_counter(), 0
    for seed in range(100):
        steps += len(run_episode(env, ScriptedAgent(env), seed=seed).turns)
    elapsed = time.perf_counter() - start
    env.close()
    print(f"  oracle episodes on Tools-v0: 100 episodes, {steps} steps, {elapsed / 100 * 1e3:.1f} ms/episode "
          f"(reset + state setup + steps + verify)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="calls per measurement")
    run(parser.parse_args().n)
