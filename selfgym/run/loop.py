"""The gym loop: curriculum -> rollouts -> store -> memory -> trainer -> held-out evaluation.

``run_iteration`` below is one iteration, top to bottom; the stages are functions of the built run
in ``selfgym.run.stages``, the parts are built in one place, ``selfgym.run.assemble.open_run``.

Everything lives in the run store, so ``resume=True`` continues a killed run: stored trajectories
of the interrupted iteration are kept and only the missing attempts run, a registered checkpoint
is loaded instead of training again, a stored evaluation is not repeated. One process writes a run:
``train`` holds the run's lease (``selfgym.lease``) from start to end, so a second ``train`` of the
same run directory and name stops at once, and a ``--resume`` after a kill takes the run over.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from selfgym.config import from_dict, to_dict
from selfgym.errors import ConfigError
from selfgym.lease import RunLease
from selfgym.run import stages
from selfgym.run.assemble import LoopRun, open_run
from selfgym.run.loopconfig import RunConfig
from selfgym.store import Store

__all__ = ["LoopResult", "loop_run_id", "run_iteration", "run_memory", "train"]


@dataclass
class LoopResult:
    """What a run did: its directory, iterations done and held-out scores by iteration."""

    run_dir: Path
    run_id: str
    iterations: int
    heldout: dict[int, float] = field(default_factory=dict)
    checkpoints: list[str] = field(default_factory=list)


def loop_run_id(store: Store) -> str:
    """The gym-loop run of a store (the first run recorded with kind ``loop``)."""
    for run_id in store.runs():
        if (store.run(run_id) or {}).get("kind") == "loop":
            return run_id
    raise ConfigError(f"{store.path} holds no gym-loop run")


def run_memory(run_dir: str | Path, mode: str = "on", run_id: str | None = None) -> list[Any]:
    """The memory a stored run's agent reads, for evaluating with it.

    Args:
        mode: ``on`` (the run's reflections and its current skill library), ``snapshot`` (the skill
            library as pinned at the run's latest snapshot, no reflections) or ``snapshot:<id>``.

    Raises:
        ConfigError: an unknown mode, or a snapshot the run does not have.
    """
    from selfgym.agents.reflection import ReflectionConfig, ReflectionMemory
    from selfgym.config import from_dict
    from selfgym.skills.library import SkillsConfig

    if mode != "on" and not mode.startswith("snapshot"):
        raise ConfigError(f"memory mode must be off, on, snapshot or snapshot:<id>, got {mode!r}")
    store = Store(run_dir)
    run_id = run_id or loop_run_id(store)
    config = (store.run(run_id) or {})["config"]
    memory: list[Any] = []
    if mode == "on" and config.get("reflections", {}).get("enabled"):
        memory.append(ReflectionMemory(store, from_dict(ReflectionConfig, config["reflections"]), run_id=run_id))
    skills = from_dict(SkillsConfig, config.get("skills", {}))
    if mode.startswith("snapshot"):
        from selfgym.skills import SkillLibrary

        snaps = SkillLibrary(store, skills, run_id=run_id).snapshots()
        snap = mode.partition(":")[2] or (snaps[-1]["id"] if snaps else None)
        if snap is None:
            raise ConfigError(f"run {run_id!r} has no skill snapshot (snapshots are taken with each checkpoint)")
        memory.append(SkillLibrary(store, skills, run_id=run_id, snapshot=snap))
    elif skills.mode != "off":
        from selfgym.skills import SkillLibrary

        memory.append(SkillLibrary(store, replace(skills, mode="read-only"), run_id=run_id))
    return memory


def run_iteration(run: LoopRun, it: int) -> dict[str, float]:
    """One iteration, top to bottom; each stage skips the work the store shows done."""
    start = time.perf_counter()
    metrics = stages.teach(run, it)  # last iteration's failures -> new tasks (and arms)
    stages.add_generated_arms(run)
    chosen = stages.choose_tasks(run, it)
    metrics |= stages.play_rollouts(run, it, [task for _, task in chosen])
    trajs = run.store.trajectories(run_id=run.run_id, iteration=it)
    metrics |= stages.update_curriculum(run, it, chosen, trajs)
    run.out.stage(f"rollouts: {len(trajs)} episodes, {metrics['tokens/rollout']:.0f} tokens, "
                  f"{metrics['time/rollout_s']:.1f}s{stages.throughput(metrics)}; "
                  f"{metrics['reflections/total']:.0f} reflections stored")
    metrics |= stages.curate_skills(run, it, trajs)
    metrics |= stages.train_policy(run, it)
    metrics |= {f"curriculum/p/{k}": v for k, v in run.curriculum.probabilities().items()}
    metrics["time/iteration_s"] = time.perf_counter() - start
    run.store.log_metrics(run.run_id, it, metrics)
    return metrics


def train(config: RunConfig, run_dir: str | Path, *, resume: bool = False,
          console: Console | None = None, on_iteration: Callable[[int], None] | None = None) -> LoopResult:
    """Run (or, with ``resume``, continue) the gym loop in ``run_dir``, holding the run's lease.

    Raises:
        RunLockedError: another live process writes this run (nothing was read or written).
        ConfigError: ``run_dir`` holds this run already and ``resume`` is False, or the stored run
            has another config than ``config`` (so a resumed run never changes its meaning).
        DuplicateAttemptError: a process that bypassed the lease wrote the same attempt.
    """
    console = console or Console(highlight=False, soft_wrap=True)
    run_dir = Path(run_dir)
    with RunLease(run_dir, config.name):
        return _train(config, run_dir, resume, console, on_iteration)


def _train(config: RunConfig, run_dir: Path, resume: bool, console: Console,
           on_iteration: Callable[[int], None] | None) -> LoopResult:
    existing = Store(run_dir).run(config.name) if (run_dir / "store.sqlite").exists() else None
    if existing and not resume:
        raise ConfigError(f"{run_dir} already holds run {config.name!r}; pass --resume to continue it")
    if existing and not _same_config(existing["config"], config):
        raise ConfigError(f"run {config.name!r} in {run_dir} was started with another config; resume it with that one")
    run = open_run(config, run_dir, console)
    try:
        return _iterate(run, config, run_dir, console, on_iteration)
    finally:
        run.close()


def _same_config(stored: dict[str, Any], config: RunConfig) -> bool:
    """Whether a stored run's config means ``config``: read with today's fields, so a key added since
    (at its default) does not stop an older run from resuming; a key no longer known does."""
    try:
        then = from_dict(RunConfig, stored, where="the stored config")
    except ConfigError:
        return False
    return json.loads(json.dumps(to_dict(then))) == json.loads(json.dumps(to_dict(config)))


def _iterate(run: LoopRun, config: RunConfig, run_dir: Path, console: Console,
             on_iteration: Callable[[int], None] | None) -> LoopResult:
    duplicates = run.store.duplicates(run.run_id)
    if duplicates:  # only a store written before schema v2 can hold them
        run.out.line(f"warning: {run.store.path}: {duplicates.describe()}")
    start_it = run.store.get_state(run.run_id, "iteration", 0)
    result = LoopResult(run_dir=run_dir, run_id=run.run_id, iterations=start_it)
    if config.eval.before and start_it == 0:
        result.heldout[0] = stages.evaluate_heldout(run, 0)
        run.out.line(f"iteration 0 (before training): held-out success {result.heldout[0]:.3f}")
        stages.evaluate_transfer(run, 0)
    for it in range(start_it, config.iterations):
        metrics = run_iteration(run, it)
        last = it + 1 == config.iterations
        if (config.eval.every and (it + 1) % config.eval.every == 0) or last:
            result.heldout[it + 1] = stages.evaluate_heldout(run, it + 1)
        if last:
            stages.evaluate_transfer(run, it + 1)
        run.store.set_state(run.run_id, "curriculum", run.curriculum.state_dict())
        run.store.set_state(run.run_id, "iteration", it + 1)
        result.iterations = it + 1
        held = f", held-out {result.heldout[it + 1]:.3f}" if it + 1 in result.heldout else ""
        run.out.line(f"iteration {it + 1}/{config.iterations}: train success {metrics['train/success']:.3f} "
                     f"over {metrics['train/episodes']:.0f} episodes{held}, "
                     f"{metrics.get('tokens/rollout', 0):.0f} tokens, {metrics['time/iteration_s']:.1f}s")
        if on_iteration is not None:
            on_iteration(it + 1)
    result.heldout.update({e["iteration"]: e["metrics"]["success_rate"] for e in run.store.evals(run.run_id)})
    result.checkpoints = [c["id"] for c in run.store.checkpoints(run.run_id)]
    return result
