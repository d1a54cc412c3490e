"""Reward hacks against ``selfgym/Code-v0``: what each attack earns, before and after the split.

Plays every attack of ``selfgym.envs.code.redteam`` on the three in-harness test shapes (``call``,
``assert``, ``check``) through ``reset``/``step``, twice in the same run:

- **before**: the env with the single-process harness it used to have (``bench/legacy_harness.py``,
  the candidate in the process that computes the verdict, the tests in ``spec.json``);
- **now**: the env as shipped (runner and candidate in separate processes, the report checked).

Prints one row per attack: the reward on each shape, or ``EXC`` when ``step`` raised on the
agent's input. A sound verifier has 0 everywhere in the "now" columns.

Run: ``python bench/reward_hacking.py`` (about ten seconds)
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium

import selfgym  # noqa: F401 - registers the envs
from selfgym.envs.code import env as code_env
from selfgym.envs.code import verifier
from selfgym.envs.code.redteam import ATTACKS, run_redteam

KINDS = ("call", "assert", "check")
LEGACY = Path(__file__).with_name("legacy_harness.py").read_text(encoding="utf-8")
LEGACY_MODULE = "_selfgym_legacy_harness"


def legacy_verify(sandbox: Any, code: str, payload: dict, config: Any = None, *, files: dict | None = None) -> Any:
    """The verifier as it was: the tests in ``spec.json``, the last marked line taken as the report."""
    config = config or verifier.VerifierConfig()
    spec, n_tests, total = verifier.harness_spec(payload, config)
    nonce = secrets.token_hex(8)
    files = {**(files or {}), "solution.py": code, "spec.json": json.dumps(spec)}
    if LEGACY_MODULE not in getattr(sandbox, "preloaded", ()):
        files[f"{LEGACY_MODULE}.py"] = LEGACY
    result = sandbox.exec(f"import {LEGACY_MODULE}\n{LEGACY_MODULE}.main()\n", stdin=nonce + "\n", files=files,
                          timeout_s=total, memory_mb=config.memory_mb)
    marker = f"@@result-{nonce}@@"
    report = next((json.loads(line[len(marker):]) for line in reversed(result.stdout.splitlines())
                   if line.startswith(marker)), None)
    if report is None:
        return verifier._no_report(result, n_tests, total, config)
    if any(key in report for key in ("syntax_error", "load_error", "missing")):
        return verifier.Verdict(n_tests=n_tests, problem="your code did not load", problem_kind="load")
    outcomes = tuple(verifier.TestOutcome(**outcome) for outcome in report["tests"])  # as it was: unchecked
    return verifier.Verdict(n_tests=n_tests, outcomes=outcomes, stdout=report.get("stdout", ""))


@contextlib.contextmanager
def legacy_harness() -> Iterator[None]:
    """Code-v0 with the single-process harness, for the 'before' column."""
    original = code_env.verify
    code_env.verify = legacy_verify
    try:
        yield
    finally:
        code_env.verify = original


def table(env: Any) -> dict[tuple[str, str], str]:
    return {(o.attack, o.kind): "EXC" if o.error else f"{o.reward:g}" for o in run_redteam(env, kinds=KINDS)}


def main() -> None:
    env = gymnasium.make("selfgym/Code-v0", max_attempts=1)
    with legacy_harness():
        before = table(env)
    now = table(env)
    env.close()
    print(f"{'attack':28s} {'before: call assert check':>26s}   {'now: call assert check':>23s}")
    for attack in ATTACKS:
        old = " ".join(f"{before[attack.name, kind]:>6s}" for kind in KINDS)
        new = " ".join(f"{now[attack.name, kind]:>6s}" for kind in KINDS)
        print(f"{attack.name:28s} {old:>26s}   {new:>23s}")
    won_before = sum(v not in ("0", "EXC") for v in before.values())
    raised_before = sum(v == "EXC" for v in before.values())
    won_now = sum(v not in ("0",) for v in now.values())
    print(f"\nbefore: {won_before} of {len(before)} (attack, shape) pairs earned reward, {raised_before} made step raise; "
          f"now: {won_now} earned reward or raised")


if __name__ == "__main__":
    main()
