"""The gym loop's stages: each a function of the built run (``LoopRun``) and the iteration.

Each stage is resumable on its own: it reads from the store whether its work for the iteration is
done (stored attempts, a ``<stage>/done/<it>`` marker, a registered checkpoint, a stored
evaluation) and does only what is missing, so a killed run continues where it stopped. A stage
returns the metrics it logs; ``selfgym.run.loop.run_iteration`` sequences them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import numpy as np

from selfgym.agents.policy import GenerationStats, MeteredPolicy
from selfgym.errors import ConfigError
from selfgym.registry import task_source_from_spec
from selfgym.run.assemble import LoopRun
from selfgym.run.curriculum import Arm
from selfgym.run.distributed import rollout_backend
from selfgym.run.evaluate import first_attempt_scores, summarise
from selfgym.run.passrates import rollout_pass_rates
from selfgym.run.rollout import RolloutConfig
from selfgym.seeds import derive_seed
from selfgym.store import EVAL_KIND
from selfgym.types import Split, Task, TaskSource, Trajectory

__all__ = ["add_generated_arms", "throughput", "choose_tasks", "curate_skills", "eval_tasks", "evaluate_heldout",
           "evaluate_transfer", "play_rollouts", "protected_tasks", "rollout_metrics", "teach", "train_policy", "update_curriculum"]

Metrics = dict[str, float]


# ---------------------------------------------------------------------------------------- tasks
def eval_tasks(source: TaskSource, split: Split, n: int, families: list[str], difficulties: list[float]) -> list[Task]:
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


def _task_for(source: TaskSource, arm: Arm, rng: np.random.Generator, tries: int = 200) -> Task:
    """A training task of the arm's family at its difficulty (rejection sampling over the source)."""
    for _ in range(tries):
        task = source.sample(rng, split="train", difficulty=arm.difficulty)
        if task.family == arm.family:
            return task
    raise ConfigError(f"task source {source.name!r} gave no task of family {arm.family!r} in {tries} draws")


def _generated_tasks(run: LoopRun) -> list[Task]:
    return [t for t in run.store.tasks(split="generated", family=run.config.teacher.family)
            if t.source.startswith("teacher:")]


def _level(run: LoopRun, difficulty: float) -> float:
    """The configured difficulty level nearest to ``difficulty`` (a generated task's arm)."""
    return min(run.config.env.difficulties, key=lambda d: (abs(d - difficulty), d))


def _generated_task(run: LoopRun, arm: Arm, rng: np.random.Generator, taken: set[str]) -> Task:
    """The least-practised stored generated task of the arm's difficulty level."""
    generated = _generated_tasks(run)
    pool = [t for t in generated if _level(run, t.difficulty) == arm.difficulty] or generated
    played = run.store.count_by_task(run_id=run.run_id, include_aborted=True)
    fresh = [t for t in pool if t.id not in taken] or pool
    low = min(played[t.id] for t in fresh)
    least = [t for t in fresh if played[t.id] == low]
    return least[int(rng.integers(len(least)))]


def add_generated_arms(run: LoopRun) -> None:
    """A curriculum arm for each level the teacher's stored tasks reach."""
    for task in _generated_tasks(run):
        run.curriculum.add_arm(Arm(task.family, _level(run, task.difficulty)))


def choose_tasks(run: LoopRun, iteration: int) -> list[tuple[Arm, Task]]:
    """The iteration's (arm, task) pairs: arms from the curriculum, a task per arm, the same for
    the same (seed, iteration) so a resumed iteration plays the tasks it started."""
    rng = np.random.default_rng([run.config.seed, iteration])
    chosen: list[tuple[Arm, Task]] = []
    for arm in run.curriculum.sample(run.config.rollout.tasks_per_iteration, rng):
        if arm.family == run.config.teacher.family:
            chosen.append((arm, _generated_task(run, arm, rng, {t.id for _, t in chosen})))
        else:
            chosen.append((arm, _task_for(run.source, arm, rng)))
    return chosen


# --------------------------------------------------------------------------------------- stages
def protected_tasks(run: LoopRun) -> list[Task]:
    """The tasks the teacher's proposals must not come close to: the run's held-out split, the
    evaluation's other source (``eval.tasks``), every transfer set (all of its tasks) and the
    held-out split of every source in ``eval.protect``."""
    ev = run.config.eval
    tasks = eval_tasks(run.source, "heldout", max(ev.n_tasks, 200), run.config.env.families, [])
    if ev.tasks:
        tasks += list(run.eval_source.tasks(ev.split))
    for name in ev.protect:
        tasks += list(task_source_from_spec(name).tasks("heldout", limit=10_000))
    for spec in ev.transfer:
        if spec.tasks:
            tasks += list(task_source_from_spec(spec.tasks).tasks(spec.split))
        else:
            tasks += eval_tasks(run.source, spec.split, max(spec.n_tasks, 200), spec.families, spec.difficulties)
    return tasks


def teach(run: LoopRun, iteration: int) -> Metrics:
    """The teacher turns the last iteration's failures into new tasks (once per iteration)."""
    if run.teacher is None or iteration == 0:
        return {}
    marker = f"teacher/done/{iteration}"
    if run.store.get_state(run.run_id, marker) is not None:
        return {}
    start = time.perf_counter()
    failures = [t for t in run.store.trajectories(run_id=run.run_id, iteration=iteration - 1)
                if not t.success and not t.aborted]
    known = {t.id: t for t in run.store.tasks() if t.split != "heldout"}
    heldout = protected_tasks(run)
    teach_config = run.config.teacher
    with run.out.busy(f"teacher: proposing from {len(failures)} failures"):
        sandbox = run.teacher.sandbox_spec
        pass_rates = rollout_pass_rates(run.agent, env_id=teach_config.solver_env,
                                        env_kwargs={"sandbox": sandbox} if sandbox is not None else None,
                                        seed=derive_seed(teach_config.seed, "solver", iteration))
        result = run.teacher.propose(failures, known, iteration=iteration, pass_rates=pass_rates, heldout=heldout)
    metrics = {**result.metrics, "time/teacher_s": time.perf_counter() - start,
               "teacher/generated_total": float(len(_generated_tasks(run)))}
    # every proposal with its verdict (the store keeps only accepted tasks), the text cut for the
    # viewer; written before the marker, so a resume redoes an unmarked iteration, never a marked one
    cut = 4_000
    proposals = [{"parent_id": r.parent_id, "parents": list(r.parents), "method": r.method, "status": r.status,
                  "reason": r.reason, "pass_rate": r.pass_rate,
                  "task_id": r.task.id if r.task is not None and r.status == "accepted" else None,
                  "text": r.text if len(r.text) <= cut else r.text[:cut] + "\n[cut]", "text_chars": len(r.text)}
                 for r in result.records]
    run.store.set_state(run.run_id, f"teacher/proposals/{iteration}", proposals)
    run.store.set_state(run.run_id, marker, metrics)
    m = result.metrics
    run.out.stage(f"teacher: {m['teacher/proposed']:.0f} proposed ({m['teacher/proposed_mutation']:.0f} by mutation), "
                  f"{m['teacher/valid']:.0f} valid, {m['teacher/accepted']:.0f} accepted "
                  f"({m['teacher/accepted_llm']:.0f} llm, {m['teacher/accepted_mutation']:.0f} mutation), "
                  f"{m['teacher/rejected_decontam']:.0f} too close to held-out, {metrics['time/teacher_s']:.1f}s")
    return metrics


def play_rollouts(run: LoopRun, iteration: int, tasks: list[Task]) -> Metrics:
    """Run the attempts of this iteration that the store does not hold yet: each task's missing
    attempt numbers, in runs of consecutive ones (an episode that ended before an earlier attempt of
    its task, then a kill, leaves a gap that is filled, never a duplicate)."""
    stored = run.store.attempts_by_task(run_id=run.run_id, iteration=iteration, include_aborted=True)
    missing = _missing_attempts(tasks, run.config.rollout.group_size, stored)
    tokens, wall, steps, stuck = 0, 0.0, 0, 0
    before = run.policy.stats() if isinstance(run.policy, MeteredPolicy) else None
    rollouts = rollout_backend(run)  # in-process, or Ray workers ([rollout] backend)
    for (first_attempt, count), chunk in sorted(missing.items()):
        result = rollouts(
            run.make_env, run.agent, chunk,
            RolloutConfig(group_size=count, max_concurrent=run.config.rollout.max_concurrent,
                          stuck_after=run.config.rollout.stuck_after,
                          seed=derive_seed(run.config.seed, "rollout", iteration, first_attempt),
                          progress=run.out.interactive),
            store=run.store, on_step_end=run.writer, first_attempt=first_attempt,
            run_id=run.run_id, iteration=iteration, policy_id=run.policy_id)
        tokens += result.generated_tokens
        wall += result.wall_s
        steps += result.steps
        stuck += result.stuck
    spent = run.policy.stats() - before if before is not None else None
    return rollout_metrics(steps, tokens, wall, spent, stuck) | _gpu_memory()


def rollout_metrics(steps: int, tokens: int, wall: float, spent: GenerationStats | None, stuck: int = 0) -> Metrics:
    """What a rollout cost: env steps and generated tokens per second, episodes ended stuck, and,
    from the local policy's counters over the same span (``spent``; a remote policy's work is not
    seen here), prefilled tokens per second, the share of prompt tokens reused and time in the model
    vs outside."""
    metrics = {"tokens/rollout": float(tokens), "time/rollout_s": wall, "episodes/stuck": float(stuck)}
    if wall > 0:
        metrics |= {"rollout/env_steps_per_s": steps / wall, "rollout/generated_tok_per_s": tokens / wall}
    if spent is not None:
        metrics |= {"tokens/prefilled_rollout": float(spent.prefilled_tokens),
                    "tokens/cached_rollout": float(spent.cached_tokens),
                    "cache/prompt_hit_rate": spent.cache_hit_rate,
                    "time/rollout_model_s": spent.model_s, "time/rollout_env_s": max(wall - spent.model_s, 0.0)}
        if wall > 0:
            metrics["rollout/prefilled_tok_per_s"] = spent.prefilled_tokens / wall
    return metrics


def _missing_attempts(tasks: Iterable[Task], group: int, stored: dict[str, set[int]]) -> dict[tuple[int, int], list[Task]]:
    """Each task's attempts ``0..group-1`` not in ``stored``, as (first attempt, how many) -> tasks
    (a task listed twice is one group)."""
    missing: dict[tuple[int, int], list[Task]] = {}
    for task in {task.id: task for task in tasks}.values():
        for first, count in _consecutive(a for a in range(group) if a not in stored.get(task.id, set())):
            missing.setdefault((first, count), []).append(task)
    return missing


def _consecutive(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """Ascending numbers as (first, count) runs: 0 1 3 4 5 -> (0, 2), (3, 3)."""
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and runs[-1][0] + runs[-1][1] == n:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((n, 1))
    return runs


def throughput(metrics: Metrics) -> str:
    """The rollout stage's throughput for a console line (empty when nothing was played)."""
    if "rollout/env_steps_per_s" not in metrics:
        return ""
    text = (f" ({metrics['rollout/env_steps_per_s']:.2f} env steps/s, "
            f"{metrics['rollout/generated_tok_per_s']:.0f} generated tok/s")
    if "rollout/prefilled_tok_per_s" in metrics:
        text += (f", {metrics['rollout/prefilled_tok_per_s']:.0f} prefilled tok/s, "
                 f"{metrics['cache/prompt_hit_rate']:.0%} of prompt tokens from the cache, "
                 f"{metrics['time/rollout_model_s']:.1f}s in the model / {metrics['time/rollout_env_s']:.1f}s outside")
    if "gpu/peak_memory_gib" in metrics:
        text += f", GPU peak {metrics['gpu/peak_memory_gib']:.1f} GiB"
    return text + ")"


def _gpu_memory() -> Metrics:
    """Peak GPU memory of this process since the last call (CUDA only)."""
    import torch

    if not torch.cuda.is_available():
        return {}
    peak = torch.cuda.max_memory_allocated() / 2**30
    torch.cuda.reset_peak_memory_stats()
    return {"gpu/peak_memory_gib": peak}


def update_curriculum(run: LoopRun, iteration: int, chosen: list[tuple[Arm, Task]],
                      trajs: list[Trajectory]) -> Metrics:
    """Feed the iteration's outcomes to the curriculum; the training-success metrics."""
    arm_of = {task.id: arm.key for arm, task in chosen}
    run.curriculum.update(iteration, [(arm_of[t.task_id], t.success) for t in trajs if t.task_id in arm_of])
    return {"train/success": sum(t.success for t in trajs) / len(trajs) if trajs else 0.0,
            "train/episodes": float(len(trajs)),
            "reflections/total": float(len(run.store.memory("reflection")))}


def curate_skills(run: LoopRun, iteration: int, trajs: list[Trajectory]) -> Metrics:
    """Skill usage, retirement and extraction from this iteration's episodes (read-write mode)."""
    if run.skills is None or run.config.skills.mode != "read-write":
        return {}
    marker = f"skills/done/{iteration}"
    if run.store.get_state(run.run_id, marker) is not None:
        return {}
    from selfgym.skills import SkillCurator

    start = time.perf_counter()
    curator = SkillCurator(run.skills, run.policy, checkpoint_id=run.checkpoint_id)
    tasks = {t.task_id: run.store.task(t.task_id) for t in trajs}
    with run.out.busy("skills: extracting and verifying"):
        metrics = curator.update(trajs, {k: v for k, v in tasks.items() if v is not None})
    metrics["time/skills_s"] = time.perf_counter() - start
    run.store.set_state(run.run_id, marker, metrics)
    run.out.stage(f"skills: {metrics['skills/proposed']:.0f} proposed, {metrics['skills/added']:.0f} added, "
                  f"{metrics['skills/merged']:.0f} merged, {metrics['skills/rejected']:.0f} rejected, "
                  f"{metrics['skills/retired']:.0f} retired; library {metrics['skills/size']:.0f}, "
                  f"{metrics['skills/uses']:.0f} uses")
    return metrics


def train_policy(run: LoopRun, iteration: int) -> Metrics:
    """One training round on the store's window of trajectories; the policy then generates with the
    new weights and a checkpoint (with the skill library's snapshot) is registered."""
    from selfgym.trainers.run import make_trainer, train_from_store

    algorithm = run.config.trainer.algorithm
    if algorithm == "none":
        return {}
    if any(c["iteration"] == iteration for c in run.store.checkpoints(run.run_id)):
        return {}  # trained before a crash; the checkpoint was loaded at start
    start = time.perf_counter()
    with run.out.busy(f"training ({algorithm})"):
        if run.trainer is None:
            config: Any = run.config.trainer.algorithm_config()
            if algorithm == "grpo":  # log-probs at the temperature the rollouts were sampled at
                config = replace(config, temperature=run.config.agent.sampling.temperature)
            run.trainer = make_trainer(algorithm, run.policy.model, tokenizer=run.policy.tokenizer, config=config)
        result, info = train_from_store(
            run.trainer, run.store, run_id=run.run_id, iteration=iteration, run_dir=run.run_dir,
            base_model=run.config.policy.model, parent_id=run.checkpoint_id,
            since_iteration=iteration - run.config.trainer.window + 1, tokenizer=run.policy.tokenizer)
    run.policy.use_model(run.trainer.model)  # generate with the updated weights (LoRA in place)
    if info is not None:
        run.checkpoint_id = info.id
        if run.skills is not None:  # the library that goes with these weights
            run.skills.snapshot(info.id)
    seconds = time.perf_counter() - start
    run.out.stage(f"train ({algorithm}): {result.steps} steps, {seconds:.1f}s")
    return {"time/train_s": seconds, "train/steps": float(result.steps)}


def evaluate_heldout(run: LoopRun, iteration: int) -> float:
    """Held-out success stored with ``iteration`` (not repeated after a resume)."""
    ev = run.config.eval
    stored = [e for e in run.store.evals(run.run_id) if e["iteration"] == iteration]
    if stored:
        return float(stored[0]["metrics"]["success_rate"])
    start = time.perf_counter()
    families = [] if ev.tasks else run.config.env.families  # another source's families are its own
    tasks = eval_tasks(run.eval_source, ev.split, ev.n_tasks, families, ev.difficulties)
    scores, _, tokens = _evaluate(run, _eval_run(run, "eval", split=ev.split), iteration, run.make_eval_env,
                                  _eval_agent(run), tasks, k=ev.k, seed=derive_seed(run.config.seed, "eval", iteration))
    metrics = scores.to_dict() | {"dtype": eval_dtype(run)}
    run.store.add_eval(run_id=run.run_id, env_id=run.config.env.id, split=ev.split, metrics=metrics,
                       checkpoint_id=run.checkpoint_id, iteration=iteration)
    seconds = time.perf_counter() - start
    run.store.log_metrics(run.run_id, iteration, {"time/eval_s": seconds,
                                                  "tokens/eval": float(tokens)})
    run.out.stage(f"held-out eval: {scores.n_tasks} tasks x {ev.k}, success {scores.success_rate:.3f} "
                  f"[{scores.ci95[0]:.3f}, {scores.ci95[1]:.3f}], {seconds:.1f}s")
    return scores.success_rate


def _evaluate(run: LoopRun, run_id: str, iteration: int, make_env: Any, agent: Any, tasks: list[Task], *,
              k: int, seed: int) -> tuple[Any, list[Trajectory], int]:
    """Score ``k`` attempts of each task under the evaluation run ``run_id``, playing only the attempts
    it does not hold yet from these weights: an evaluation killed part-way keeps the episodes it
    finished, and the resume plays the rest (a fresh evaluation plays all, with ``seed``). Returns the
    scores, every scored episode and the tokens generated now."""
    ids = {task.id for task in tasks}
    episodes = [t for t in run.store.trajectories(run_id=run_id, iteration=iteration, include_aborted=True)
                if t.task_id in ids and t.policy_id == run.policy_id]
    stored: dict[str, set[int]] = {}
    for traj in episodes:
        stored.setdefault(traj.task_id, set()).add(traj.attempt)
    tokens = 0
    rollouts = rollout_backend(run, dtype=run.config.eval.dtype)
    for (first, count), chunk in sorted(_missing_attempts(tasks, k, stored).items()):
        result = rollouts(
            make_env, agent, chunk,
            RolloutConfig(group_size=count, max_concurrent=run.config.rollout.max_concurrent, seed=seed + first,
                          stuck_after=run.config.rollout.stuck_after, progress=run.out.interactive),
            store=run.store, first_attempt=first, run_id=run_id, iteration=iteration, policy_id=run.policy_id)
        episodes += result.trajectories
        tokens += result.generated_tokens
    return summarise(episodes, {task.id: task for task in tasks}, k), episodes, tokens


def _eval_run(run: LoopRun, name: str, **info: Any) -> str:
    """The run id an evaluation's episodes are stored under (``<run>/eval``, ``<run>/transfer/<name>``),
    recorded as kind ``eval``: they can be read in the viewer, and no trainer or export learns from them."""
    run_id = f"{run.run_id}/{name}"
    run.store.create_run(run_id, {"run": run.run_id, **info}, kind=EVAL_KIND)
    return run_id


def _eval_agent(run: LoopRun) -> Any:
    """The agent the evaluations score: with or without memory, at the eval temperature, generating
    with a copy of the current weights in ``eval.dtype`` where that is not the policy's own."""
    ev = run.config.eval
    agent = run.agent if ev.memory else run.agent.with_memory([])
    if ev.temperature is not None:
        agent = agent.with_config(sampling=replace(agent.config.sampling, temperature=ev.temperature))
    if ev.dtype and ev.dtype != _weights_dtype(run):
        agent = agent.with_policy(run.policy.copy_in(ev.dtype))
    return agent


def eval_dtype(run: LoopRun) -> str:
    """The dtype of the weights the evaluations score: ``eval.dtype``, else the policy's (stored in
    each evaluation's metrics, since it changes greedy outputs)."""
    return run.config.eval.dtype or _weights_dtype(run)


def _weights_dtype(run: LoopRun) -> str:
    model = getattr(run.policy, "model", None)
    dtype = next(model.parameters()).dtype if model is not None else None
    return str(dtype).removeprefix("torch.") if dtype is not None else "unknown"


def evaluate_transfer(run: LoopRun, iteration: int) -> Metrics:
    """Score each ``eval.transfer`` set with the current weights, stored as split ``transfer:<name>``
    with ``iteration`` (a stored one is not repeated after a resume).

    Each task gets one episode of ``max_attempts`` submissions; the metrics hold success within
    them (``success_rate``, ``ci95``, ``outcomes``) and on the first submission (``first_attempt``).
    """
    done = {(e["split"], e["iteration"]) for e in run.store.evals(run.run_id, transfer=True)}
    todo = [spec for spec in run.config.eval.transfer if (f"transfer:{spec.name}", iteration) not in done]
    logged: Metrics = {}
    if not todo:
        return logged
    scored = _eval_agent(run)  # one copy of the weights for every set
    for spec in todo:
        split = f"transfer:{spec.name}"
        start = time.perf_counter()
        source = task_source_from_spec(spec.tasks) if spec.tasks else run.source
        tasks = eval_tasks(source, spec.split, spec.n_tasks, spec.families, spec.difficulties)
        extra: dict[str, Any] = {} if spec.max_attempts is None else {"max_attempts": spec.max_attempts}
        if spec.tasks:
            extra["task_source"] = source
        agent = scored
        if spec.max_tokens is not None:
            agent = agent.with_config(sampling=replace(agent.config.sampling, max_tokens=spec.max_tokens))
        with run.out.busy(f"transfer eval {spec.name}: {len(tasks)} tasks"):
            scores, episodes, tokens = _evaluate(
                run, _eval_run(run, f"transfer/{spec.name}", split=split), iteration, run.env_with(**extra), agent,
                tasks, k=1, seed=derive_seed(run.config.seed, "transfer", spec.name, iteration))
        first = first_attempt_scores(episodes)
        attempts = spec.max_attempts or _env_attempts(run.env)
        metrics = {**scores.to_dict(), "first_attempt": first, "max_attempts": attempts,
                   "tasks": spec.tasks or "env", "families": spec.families, "dtype": eval_dtype(run)}
        run.store.add_eval(run_id=run.run_id, env_id=run.config.env.id, split=split, metrics=metrics,
                           checkpoint_id=run.checkpoint_id, iteration=iteration)
        seconds = time.perf_counter() - start
        logged.update({f"transfer/{spec.name}/first_attempt": first["success_rate"],
                       f"transfer/{spec.name}/within_attempts": scores.success_rate,
                       f"time/transfer_{spec.name}_s": seconds,
                       f"tokens/transfer_{spec.name}": float(tokens)})
        run.out.stage(f"transfer eval {spec.name}: {scores.n_tasks} tasks, first attempt {first['success_rate']:.3f} "
                      f"[{first['ci95'][0]:.3f}, {first['ci95'][1]:.3f}], within {attempts} attempt{'s' if attempts != 1 else ''} "
                      f"{scores.success_rate:.3f} [{scores.ci95[0]:.3f}, {scores.ci95[1]:.3f}], {seconds:.1f}s")
    if logged:
        run.store.log_metrics(run.run_id, iteration, logged)
    return logged


def _env_attempts(env: Any) -> int:
    """The env's submissions per episode (``config.max_attempts``; 1 for envs without attempts)."""
    config = getattr(getattr(env, "unwrapped", env), "config", None)
    return int(getattr(config, "max_attempts", 1))
