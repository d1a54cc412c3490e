"""The gym loop: curriculum -> rollouts -> store -> memory -> trainer -> held-out evaluation.

One iteration::

    arms  = curriculum.sample(tasks_per_iteration)        # (family, difficulty)
    tasks = one task per arm from the env's task source   # deterministic per (seed, iteration)
    run_rollouts(tasks x group_size)                      # each trajectory stored as it ends;
                                                          # failures -> reflections (if on)
    curriculum.update(outcomes)
    train_from_store(...)                                 # checkpoint registered in the store
    every N iterations: held-out evaluation               # stored with the iteration
    store.set_state("iteration", it + 1)

Everything lives in the run store, so ``resume=True`` continues a killed run: stored trajectories
of the interrupted iteration are kept and only the missing attempts run, a registered checkpoint
is loaded instead of training again, a stored evaluation is not repeated. One process writes a run:
``train`` holds the run's lease (``selfgym.lease``) from start to end, so a second ``train`` of the
same run directory and name stops at once, and a ``--resume`` after a kill takes the run over.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

import selfgym
from selfgym.config import to_dict
from selfgym.envs.base import llm_env
from selfgym.errors import ConfigError
from selfgym.lease import RunLease
from selfgym.run.curriculum import Arm, Curriculum
from selfgym.run.evaluate import evaluate_tasks
from selfgym.run.loopconfig import RunConfig
from selfgym.run.passrates import rollout_pass_rates
from selfgym.run.rollout import RolloutConfig, run_rollouts
from selfgym.seeds import derive_seed
from selfgym.store import Store
from selfgym.types import Task

__all__ = ["LoopResult", "run_memory", "train"]


@dataclass
class LoopResult:
    """What a run did: its directory, iterations done and held-out scores by iteration."""

    run_dir: Path
    run_id: str
    iterations: int
    heldout: dict[int, float] = field(default_factory=dict)
    checkpoints: list[str] = field(default_factory=list)


def _families(source: Any, split: str = "train", probe: int = 64) -> list[str]:
    """The task families of a source, in first-seen order of its task list."""
    seen: dict[str, None] = {}
    for task in source.tasks(split, limit=probe):
        seen.setdefault(task.family, None)
    return list(seen)


def _task_for(source: Any, arm: Arm, rng: np.random.Generator, tries: int = 200) -> Task:
    """A training task of the arm's family at its difficulty (rejection sampling over the source)."""
    for _ in range(tries):
        task = source.sample(rng, split="train", difficulty=arm.difficulty)
        if task.family == arm.family:
            return task
    raise ConfigError(f"task source {source.name!r} gave no task of family {arm.family!r} in {tries} draws")


def _eval_tasks(source: Any, split: str, n: int, families: list[str], difficulties: list[float]) -> list[Task]:
    """The first ``n`` tasks of ``split`` in the source's fixed order, of the given families and
    difficulties (empty: any)."""
    if not families and not difficulties:
        return list(source.tasks(split, limit=n))
    chosen: list[Task] = []
    for scanned, task in enumerate(source.tasks(split)):
        if (not families or task.family in families) and (
                not difficulties or any(abs(task.difficulty - d) < 1e-6 for d in difficulties)):
            chosen.append(task)
        if len(chosen) == n or scanned > 1000 * n:
            break
    if not chosen:
        raise ConfigError(f"the {split} split has no task of families {families} at difficulties {difficulties}")
    return chosen


def loop_run_id(store: Store) -> str:
    """The gym-loop run of a store (the first run whose config is a ``RunConfig``)."""
    for run_id in store.runs():
        if "trainer" in (store.run(run_id) or {}).get("config", {}):
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


class _Run:
    """State of one run (kept small: everything durable is in the store)."""

    def __init__(self, config: RunConfig, run_dir: Path, console: Console) -> None:
        from selfgym.agents.hf import TransformersConfig, TransformersPolicy
        from selfgym.agents.llm import LLMAgent
        from selfgym.agents.reflection import ReflectionMemory, ReflectionWriter, Reflector

        self.config, self.run_dir, self.console = config, run_dir, console
        self.run_id = config.name
        self.store = Store(run_dir)
        self.store.create_run(self.run_id, to_dict(config), kind="loop")
        self.env = selfgym.make(config.env.id, **config.env.kwargs)
        self.source = llm_env(self.env).task_source
        families = config.env.families or _families(self.source)
        self.curriculum = Curriculum([Arm(f, d) for f in families for d in config.env.difficulties], config.curriculum)
        state = self.store.get_state(self.run_id, "curriculum")
        if state:
            self.curriculum.load_state_dict(state)
        checkpoints = self.store.checkpoints(self.run_id)
        self.checkpoint_id = checkpoints[-1]["id"] if checkpoints else None
        spec = checkpoints[-1]["path"] if checkpoints else config.policy.model
        self.policy = TransformersPolicy.load(TransformersConfig(model=str(spec), device=config.policy.device,
                                                                 name=config.policy.model))
        self.reflections = ReflectionMemory(self.store, config.reflections, run_id=self.run_id)
        memory: list[Any] = [self.reflections] if config.reflections.enabled else []
        self.make_env: Callable[[], Any] = lambda: selfgym.make(config.env.id, **config.env.kwargs)
        self.skills: Any = None
        if config.skills.mode != "off":
            from selfgym.skills import SkillLibrary, skills_env_factory

            self.skills = SkillLibrary(self.store, config.skills, run_id=self.run_id)
            memory.append(self.skills)
            self.make_env = skills_env_factory(self.make_env, self.skills)
        self.agent = LLMAgent(self.policy, config.agent, memory=memory)
        self.teacher: Any = None
        if config.teacher.enabled:
            from selfgym.agents.policy import make_policy
            from selfgym.agents.teacher import Teacher

            spec = config.policy.teacher_model
            self.teacher = Teacher(make_policy(spec) if spec else self.policy, config.teacher, store=self.store,
                                   run_id=self.run_id, teacher_id=f"{self.run_id}/teacher:{spec or 'student'}")
        self.writer = ReflectionWriter(Reflector(self.policy, config.reflections), self.reflections) \
            if config.reflections.enabled else None
        self.trainer: Any = None

    def busy(self, text: str) -> Any:
        """A spinner while a stage without its own progress bar runs (terminals only)."""
        return self.console.status(text) if self.console.is_terminal else contextlib.nullcontext()

    def stage(self, text: str) -> None:
        """A line per finished stage where no progress bars show (logs, CI, pipes)."""
        if not self.console.is_terminal:
            self.console.print(f"  {text}", markup=False)

    # ------------------------------------------------------------------ stages
    def choose_tasks(self, iteration: int) -> list[tuple[Arm, Task]]:
        rng = np.random.default_rng([self.config.seed, iteration])
        arms = self.curriculum.sample(self.config.rollout.tasks_per_iteration, rng)
        chosen: list[tuple[Arm, Task]] = []
        for arm in arms:
            if arm.family == self.config.teacher.family:
                chosen.append((arm, self._generated_task(arm, rng, {t.id for _, t in chosen})))
            else:
                chosen.append((arm, _task_for(self.source, arm, rng)))
        return chosen

    def _bin(self, difficulty: float) -> float:
        """The configured difficulty level nearest to ``difficulty`` (a generated task's arm)."""
        return min(self.config.env.difficulties, key=lambda d: (abs(d - difficulty), d))

    def generated_tasks(self) -> list[Task]:
        return [t for t in self.store.tasks(split="generated", family=self.config.teacher.family)
                if t.source.startswith("teacher:")]

    def add_generated_arms(self) -> None:
        for task in self.generated_tasks():
            self.curriculum.add_arm(Arm(task.family, self._bin(task.difficulty)))

    def _generated_task(self, arm: Arm, rng: np.random.Generator, taken: set[str]) -> Task:
        """The least-practised stored generated task of the arm's difficulty level."""
        pool = [t for t in self.generated_tasks() if self._bin(t.difficulty) == arm.difficulty] \
            or self.generated_tasks()
        played = self.store.count_by_task(run_id=self.run_id, include_aborted=True)
        fresh = [t for t in pool if t.id not in taken] or pool
        low = min(played[t.id] for t in fresh)
        least = [t for t in fresh if played[t.id] == low]
        return least[int(rng.integers(len(least)))]

    def rollouts(self, iteration: int, tasks: list[Task]) -> dict[str, float]:
        """Run the attempts of this iteration that the store does not hold yet."""
        group = self.config.rollout.group_size
        done = self.store.count_by_task(run_id=self.run_id, iteration=iteration, include_aborted=True)
        missing: dict[int, list[Task]] = {}
        unique = {task.id: task for task in tasks}  # a task drawn twice is one group
        for task in unique.values():
            if done[task.id] < group:
                missing.setdefault(done[task.id], []).append(task)
        tokens, wall = 0, 0.0
        for first_attempt, chunk in sorted(missing.items()):
            result = run_rollouts(
                self.make_env, self.agent, chunk,
                RolloutConfig(group_size=group - first_attempt, max_concurrent=self.config.rollout.max_concurrent,
                              seed=derive_seed(self.config.seed, "rollout", iteration, first_attempt),
                              progress=self.console.is_terminal),
                store=self.store, on_step_end=self.writer, first_attempt=first_attempt,
                run_id=self.run_id, iteration=iteration, policy_id=self.policy_id)
            tokens += result.generated_tokens
            wall += result.wall_s
        return {"tokens/rollout": float(tokens), "time/rollout_s": wall}

    @property
    def policy_id(self) -> str:
        return self.checkpoint_id or self.config.policy.model

    def teach(self, iteration: int) -> dict[str, float]:
        """The teacher turns the last iteration's failures into new tasks (once per iteration)."""
        if self.teacher is None or iteration == 0:
            return {}
        marker = f"teacher/done/{iteration}"
        if self.store.get_state(self.run_id, marker) is not None:
            return {}
        start = time.perf_counter()
        failures = [t for t in self.store.trajectories(run_id=self.run_id, iteration=iteration - 1)
                    if not t.success and not t.aborted]
        known = {t.id: t for t in self.store.tasks() if t.split != "heldout"}
        ev = self.config.eval
        heldout = _eval_tasks(self.source, "heldout", max(ev.n_tasks, 200), self.config.env.families, [])
        with self.busy(f"teacher: proposing from {len(failures)} failures"):
            teach = self.config.teacher
            env_kwargs = {"sandbox": self.teacher.sandbox_spec} if self.teacher.sandbox_spec is not None else None
            pass_rates = rollout_pass_rates(self.agent, env_id=teach.solver_env, env_kwargs=env_kwargs,
                                            seed=derive_seed(teach.seed, "solver", iteration))
            result = self.teacher.propose(failures, known, iteration=iteration, pass_rates=pass_rates, heldout=heldout)
        metrics = {**result.metrics, "time/teacher_s": time.perf_counter() - start,
                   "teacher/generated_total": float(len(self.generated_tasks()))}
        self.store.set_state(self.run_id, marker, metrics)
        m = result.metrics
        self.stage(f"teacher: {m['teacher/proposed']:.0f} proposed, {m['teacher/valid']:.0f} valid, "
                   f"{m['teacher/accepted']:.0f} accepted, {m['teacher/rejected_decontam']:.0f} too close to "
                   f"held-out, {metrics['time/teacher_s']:.1f}s")
        return metrics

    def curate_skills(self, iteration: int, trajs: list[Any]) -> dict[str, float]:
        """Skill usage, retirement and extraction from this iteration's episodes (read-write mode)."""
        if self.skills is None or self.config.skills.mode != "read-write":
            return {}
        marker = f"skills/done/{iteration}"
        if self.store.get_state(self.run_id, marker) is not None:
            return {}
        from selfgym.skills import SkillCurator

        start = time.perf_counter()
        curator = SkillCurator(self.skills, self.policy, checkpoint_id=self.checkpoint_id)
        tasks = {t.task_id: self.store.task(t.task_id) for t in trajs}
        with self.busy("skills: extracting and verifying"):
            metrics = curator.update(trajs, {k: v for k, v in tasks.items() if v is not None})
        metrics["time/skills_s"] = time.perf_counter() - start
        self.store.set_state(self.run_id, marker, metrics)
        self.stage(f"skills: {metrics['skills/proposed']:.0f} proposed, {metrics['skills/added']:.0f} added, "
                   f"{metrics['skills/merged']:.0f} merged, {metrics['skills/rejected']:.0f} rejected, "
                   f"{metrics['skills/retired']:.0f} retired; library {metrics['skills/size']:.0f}, "
                   f"{metrics['skills/uses']:.0f} uses")
        return metrics

    def train_step(self, iteration: int) -> dict[str, float]:
        from selfgym.trainers.run import make_trainer, train_from_store

        algorithm = self.config.trainer.algorithm
        if algorithm == "none":
            return {}
        if any(c["iteration"] == iteration for c in self.store.checkpoints(self.run_id)):
            return {}  # trained before a crash; the checkpoint was loaded at start
        start = time.perf_counter()
        if self.trainer is None:
            config: Any = self.config.trainer.algorithm_config()
            if algorithm == "grpo":  # log-probs at the temperature the rollouts were sampled at
                config = replace(config, temperature=self.config.agent.sampling.temperature)
            self.trainer = make_trainer(algorithm, self.policy.model, tokenizer=self.policy.tokenizer, config=config)
        result, info = train_from_store(
            self.trainer, self.store, run_id=self.run_id, iteration=iteration, run_dir=self.run_dir,
            base_model=self.config.policy.model, parent_id=self.checkpoint_id,
            since_iteration=iteration - self.config.trainer.window + 1, tokenizer=self.policy.tokenizer)
        self.policy.use_model(self.trainer.model)  # generate with the updated weights (LoRA in place)
        if info is not None:
            self.checkpoint_id = info.id
            if self.skills is not None:  # the library that goes with these weights
                self.skills.snapshot(info.id)
        return {"time/train_s": time.perf_counter() - start, "train/steps": float(result.steps)}

    def evaluate(self, iteration: int) -> float:
        """Held-out evaluation stored with ``iteration`` (not repeated after a resume)."""
        ev = self.config.eval
        if any(e["iteration"] == iteration for e in self.store.evals(self.run_id)):
            return next(e["metrics"]["success_rate"] for e in self.store.evals(self.run_id)
                        if e["iteration"] == iteration)
        start = time.perf_counter()
        tasks = _eval_tasks(self.source, ev.split, ev.n_tasks, self.config.env.families, ev.difficulties)
        agent = self.agent if ev.memory else self.agent.with_memory([])
        if ev.temperature is not None:
            agent = agent.with_config(sampling=replace(agent.config.sampling, temperature=ev.temperature))
        scores, result = evaluate_tasks(
            self.make_env, agent, tasks, k=ev.k,
            seed=derive_seed(self.config.seed, "eval", iteration), max_concurrent=self.config.rollout.max_concurrent,
            progress=self.console.is_terminal, run_id=f"{self.run_id}/eval", iteration=iteration,
            policy_id=self.policy_id)
        self.store.add_eval(run_id=self.run_id, env_id=self.config.env.id, split=ev.split, metrics=scores.to_dict(),
                            checkpoint_id=self.checkpoint_id, iteration=iteration)
        seconds = time.perf_counter() - start
        self.store.log_metrics(self.run_id, iteration, {"time/eval_s": seconds,
                                                        "tokens/eval": float(result.generated_tokens)})
        self.stage(f"held-out eval: {scores.n_tasks} tasks x {ev.k}, success {scores.success_rate:.3f} "
                   f"[{scores.ci95[0]:.3f}, {scores.ci95[1]:.3f}], {seconds:.1f}s")
        return scores.success_rate

    def iteration(self, it: int) -> dict[str, float]:
        start = time.perf_counter()
        teacher = self.teach(it)
        self.add_generated_arms()
        chosen = self.choose_tasks(it)
        arm_of = {task.id: arm.key for arm, task in chosen}
        metrics = self.rollouts(it, [task for _, task in chosen])
        trajs = self.store.trajectories(run_id=self.run_id, iteration=it)
        self.curriculum.update(it, [(arm_of[t.task_id], t.success) for t in trajs if t.task_id in arm_of])
        metrics["train/success"] = sum(t.success for t in trajs) / len(trajs) if trajs else 0.0
        metrics["train/episodes"] = float(len(trajs))
        metrics.update(teacher)
        metrics["reflections/total"] = float(len(self.store.memory("reflection")))
        self.stage(f"rollouts: {len(trajs)} episodes, {metrics['tokens/rollout']:.0f} tokens, "
                   f"{metrics['time/rollout_s']:.1f}s; {metrics['reflections/total']:.0f} reflections stored")
        metrics.update(self.curate_skills(it, trajs))
        with self.busy(f"training ({self.config.trainer.algorithm})"):
            metrics.update(self.train_step(it))
        if "time/train_s" in metrics:
            self.stage(f"train ({self.config.trainer.algorithm}): {metrics['train/steps']:.0f} steps, "
                       f"{metrics['time/train_s']:.1f}s")
        metrics.update({f"curriculum/p/{k}": v for k, v in self.curriculum.probabilities().items()})
        metrics["time/iteration_s"] = time.perf_counter() - start
        self.store.log_metrics(self.run_id, it, metrics)
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
    if existing and existing["config"] != json.loads(json.dumps(to_dict(config))):
        raise ConfigError(f"run {config.name!r} in {run_dir} was started with another config; resume it with that one")
    run = _Run(config, run_dir, console)
    duplicates = run.store.duplicates(run.run_id)
    if duplicates:  # only a store written before schema v2 can hold them
        console.print(f"warning: {run.store.path}: {duplicates.describe()}", markup=False)
    start_it = run.store.get_state(run.run_id, "iteration", 0)
    result = LoopResult(run_dir=run_dir, run_id=run.run_id, iterations=start_it)
    if config.eval.before and start_it == 0:
        result.heldout[0] = run.evaluate(0)
        console.print(f"iteration 0 (before training): held-out success {result.heldout[0]:.3f}")
    for it in range(start_it, config.iterations):
        metrics = run.iteration(it)
        last = it + 1 == config.iterations
        if (config.eval.every and (it + 1) % config.eval.every == 0) or last:
            result.heldout[it + 1] = run.evaluate(it + 1)
        run.store.set_state(run.run_id, "curriculum", run.curriculum.state_dict())
        run.store.set_state(run.run_id, "iteration", it + 1)
        result.iterations = it + 1
        held = f", held-out {result.heldout[it + 1]:.3f}" if it + 1 in result.heldout else ""
        console.print(f"iteration {it + 1}/{config.iterations}: train success {metrics['train/success']:.3f} "
                      f"over {metrics['train/episodes']:.0f} episodes{held}, "
                      f"{metrics.get('tokens/rollout', 0):.0f} tokens, {metrics['time/iteration_s']:.1f}s", markup=False)
        if on_iteration is not None:
            on_iteration(it + 1)
    result.heldout.update({e["iteration"]: e["metrics"]["success_rate"] for e in run.store.evals(run.run_id)})
    result.checkpoints = [c["id"] for c in run.store.checkpoints(run.run_id)]
    run.env.close()
    return result
