"""The gym loop's composition root: one function builds every part of a run from its config.

``open_run`` is the only place that knows which class implements what (the env, the policy backend,
the agent, its memories, the teacher); the stages (``selfgym.run.stages``) get a built ``LoopRun``
and the loop (``selfgym.run.loop``) only sequences them. ``LoopConsole`` is the run's console output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

import selfgym
from selfgym.config import to_dict
from selfgym.envs.base import llm_env
from selfgym.registry import task_source_from_spec
from selfgym.run.curriculum import Arm, Curriculum
from selfgym.run.loopconfig import RunConfig
from selfgym.store import Store
from selfgym.types import Split, TaskSource

__all__ = ["LoopConsole", "LoopRun", "open_run"]


class LoopConsole:
    """What the loop prints: a spinner per stage on a terminal, a line per stage elsewhere."""

    def __init__(self, console: Console) -> None:
        self.console = console

    @property
    def interactive(self) -> bool:
        """True on a terminal (progress bars and spinners show)."""
        return self.console.is_terminal

    def busy(self, text: str) -> Any:
        """A spinner while a stage without its own progress bar runs (terminals only)."""
        return self.console.status(text) if self.interactive else contextlib.nullcontext()

    def stage(self, text: str) -> None:
        """A line per finished stage where no progress bars show (logs, CI, pipes)."""
        if not self.interactive:
            self.console.print(f"  {text}", markup=False)

    def line(self, text: str) -> None:
        """A line always printed (iteration summaries, warnings)."""
        self.console.print(text, markup=False)


@dataclass
class LoopRun:
    """The built parts of one run. Everything durable lives in ``store``; the two mutable fields
    are the weights the policy generates with (``checkpoint_id``) and the trainer that updates them
    (created at the first training step, kept across iterations for its optimizer state)."""

    config: RunConfig
    run_dir: Path
    run_id: str
    store: Store
    out: LoopConsole
    env: Any  # the run's own env instance (its task source; closed at the end)
    source: TaskSource
    make_env: Callable[[], Any]  # a fresh env per episode (skills-aware when a library is on)
    eval_source: TaskSource  # the held-out evaluation's tasks: ``source``, or ``eval.tasks`` when set
    make_eval_env: Callable[[], Any]  # ``make_env`` playing ``eval_source``
    env_with: Callable[..., Callable[[], Any]]  # ``make_env`` with extra env kwargs (transfer evaluations)
    curriculum: Curriculum
    policy: Any  # TransformersPolicy: the loop trains its weights in place
    agent: Any  # LLMAgent
    reflections: Any  # ReflectionMemory (empty when reflections are off)
    writer: Any  # ReflectionWriter or None: called at each step end of the rollouts
    skills: Any  # SkillLibrary or None
    teacher: Any  # Teacher or None
    checkpoint_id: str | None = None
    trainer: Any = None
    ray_rollouts: Any = None  # RayRollouts kept across the run's stages ([rollout] backend = "ray"); closed at its end

    def close(self) -> None:
        """Stop what the run started: its env, and its Ray env workers."""
        if self.ray_rollouts is not None:
            self.ray_rollouts.close()
            self.ray_rollouts = None
        self.env.close()

    @property
    def policy_id(self) -> str:
        """The id stored with each trajectory: the checkpoint generating, or the base model."""
        return self.checkpoint_id or self.config.policy.model


def _families(source: TaskSource, split: Split = "train", probe: int = 64) -> list[str]:
    """The task families of a source, in first-seen order of its task list."""
    seen: dict[str, None] = {}
    for task in source.tasks(split, limit=probe):
        seen.setdefault(task.family, None)
    return list(seen)


def open_run(config: RunConfig, run_dir: Path, console: Console) -> LoopRun:
    """Build a run's parts, loading its curriculum state and its latest checkpoint from the store
    (a fresh run starts from ``config.policy.model``)."""
    from selfgym.agents.hf import TransformersConfig, TransformersPolicy
    from selfgym.agents.llm import LLMAgent
    from selfgym.agents.reflection import ReflectionMemory, ReflectionWriter, Reflector

    run_id = config.name
    store = Store(run_dir)
    store.create_run(run_id, to_dict(config), kind="loop")
    env = selfgym.make(config.env.id, **config.env.kwargs)
    source = llm_env(env).task_source
    families = config.env.families or _families(source)
    curriculum = Curriculum([Arm(f, d) for f in families for d in config.env.difficulties], config.curriculum)
    state = store.get_state(run_id, "curriculum")
    if state:
        curriculum.load_state_dict(state)
    checkpoints = store.checkpoints(run_id)
    spec = checkpoints[-1]["path"] if checkpoints else config.policy.model
    policy = TransformersPolicy.load(TransformersConfig(model=str(spec), device=config.policy.device,
                                                        dtype=config.policy.dtype, name=config.policy.model))
    reflections = ReflectionMemory(store, config.reflections, run_id=run_id)
    memory: list[Any] = [reflections] if config.reflections.enabled else []
    eval_source = task_source_from_spec(config.eval.tasks) if config.eval.tasks else source

    def env_factory(**extra: Any) -> Callable[[], Any]:
        return lambda: selfgym.make(config.env.id, **{**config.env.kwargs, **extra})

    make_env = env_factory()
    make_eval_env = env_factory(task_source=eval_source) if config.eval.tasks else make_env
    skills: Any = None
    if config.skills.mode != "off":
        from selfgym.skills import SkillLibrary, skills_env_factory

        skills = SkillLibrary(store, config.skills, run_id=run_id)
        memory.append(skills)
        make_env = skills_env_factory(make_env, skills)
        make_eval_env = skills_env_factory(make_eval_env, skills)

    def env_with(**extra: Any) -> Callable[[], Any]:
        if skills is None:
            return env_factory(**extra)
        from selfgym.skills import skills_env_factory

        return skills_env_factory(env_factory(**extra), skills)

    teacher: Any = None
    if config.teacher.enabled:
        from selfgym.agents.factory import make_policy
        from selfgym.agents.teacher import Teacher

        teacher_spec = config.policy.teacher_model
        teacher = Teacher(make_policy(teacher_spec) if teacher_spec else policy, config.teacher, store=store,
                          run_id=run_id, teacher_id=f"{run_id}/teacher:{teacher_spec or 'student'}")
    writer = ReflectionWriter(Reflector(policy, config.reflections), reflections) \
        if config.reflections.enabled else None
    return LoopRun(config=config, run_dir=run_dir, run_id=run_id, store=store, out=LoopConsole(console), env=env,
                   source=source, make_env=make_env, eval_source=eval_source, make_eval_env=make_eval_env,
                   env_with=env_with, curriculum=curriculum, policy=policy,
                   agent=LLMAgent(policy, config.agent, memory=memory), reflections=reflections, writer=writer,
                   skills=skills, teacher=teacher, checkpoint_id=checkpoints[-1]["id"] if checkpoints else None)
