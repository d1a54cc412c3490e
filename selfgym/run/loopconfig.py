"""The run config of ``selfgym train``: one TOML file mapped onto ``RunConfig``.

Every component can be switched off, so one config expresses each seed method (RFT-only,
Reflexion, skills, teacher, self-correction GRPO); ``configs/`` ships them. ``selfgym train
--help-config`` prints every field with its help.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from selfgym.agents.llm import AgentConfig
from selfgym.agents.reflection import ReflectionConfig
from selfgym.agents.teacher import TeacherConfig
from selfgym.errors import ConfigError
from selfgym.run.curriculum import CurriculumConfig
from selfgym.run.episode import STUCK_AFTER
from selfgym.skills.library import SkillsConfig
from selfgym.trainers.dpo import DPOConfig
from selfgym.trainers.grpo import GRPOConfig
from selfgym.trainers.rft import RFTConfig

__all__ = ["EnvSection", "EvalSection", "PolicySection", "RolloutSection", "RunConfig", "TrainerSection",
           "TransferEval"]


@dataclass(frozen=True, kw_only=True)
class EnvSection:
    """The environment the agent trains in, and the curriculum's arms over it."""

    id: str = field(default="selfgym/Code-v0", metadata={"help": "registered env id"})
    kwargs: dict[str, Any] = field(default_factory=dict, metadata={"help": "keyword arguments for the env"})
    families: list[str] = field(
        default_factory=list, metadata={"help": "task families to train on (arms); empty: every family of the source"})
    difficulties: list[float] = field(
        default_factory=lambda: [0.0, 0.5], metadata={"help": "difficulty levels (arms) the curriculum moves along"})

    def __post_init__(self) -> None:
        if not self.difficulties or any(not 0.0 <= d <= 1.0 for d in self.difficulties):
            raise ConfigError(f"env.difficulties must be a non-empty list of values in [0, 1], got {self.difficulties}")


@dataclass(frozen=True, kw_only=True)
class PolicySection:
    """Which model acts (and is trained)."""

    model: str = field(default="embedded", metadata={"help": "'embedded', a checkpoint or LoRA adapter dir"})
    device: str | None = field(default=None, metadata={"help": "cpu | cuda (default: cuda if available)"})
    dtype: str | None = field(default=None, metadata={
        "help": "float32 | bfloat16 | float16 (default: bfloat16 on CUDA, float32 on CPU)"})
    teacher_model: str = field(
        default="", metadata={"help": "the teacher's model spec (e.g. openai:URL#model); empty: the student's own"})


@dataclass(frozen=True, kw_only=True)
class RolloutSection:
    """How much experience one iteration collects."""

    tasks_per_iteration: int = field(default=8, metadata={"help": "tasks drawn by the curriculum per iteration"})
    group_size: int = field(default=2, metadata={"help": "attempts per task (the G of GRPO)"})
    max_concurrent: int = field(default=16, metadata={"help": "episodes in flight (one batched generate per step)"})
    stuck_after: int = field(default=STUCK_AFTER, metadata={
        "help": "an episode whose same action got the same answer this many times in a row ends there (truncated), "
                "in training rollouts and evaluations; 0: never"})
    backend: Literal["local", "ray"] = field(
        default="local", metadata={"help": "local: the in-process engine | ray: Ray env workers playing whole "
                                           "episodes ($RAY_ADDRESS, else a local Ray instance)"})
    ray_workers: int = field(default=2, metadata={"help": "env workers (Ray actors) when backend = 'ray'"})
    policy_url: str = field(
        default="", metadata={"help": "backend = 'ray': the OpenAI-compatible server the workers generate with "
                                      "(base URL with /v1, '#model' may follow); empty: each worker loads the "
                                      "weights the driver generates with"})
    env_servers: list[str] = field(
        default_factory=list, metadata={"help": "backend = 'ray': env servers (selfgym serve, ws://host:port) the "
                                                "workers play on, worker i on server i mod n; the servers "
                                                "hold the env's arguments (--env-arg); empty: local envs"})

    def __post_init__(self) -> None:
        if self.tasks_per_iteration < 1 or self.group_size < 1 or self.max_concurrent < 1 or self.ray_workers < 1:
            raise ConfigError("rollout.tasks_per_iteration, group_size, max_concurrent and ray_workers must be >= 1")
        if self.stuck_after < 0 or self.stuck_after == 1:
            raise ConfigError(f"rollout.stuck_after must be 0 (off) or >= 2, got {self.stuck_after}")
        if (self.policy_url or self.env_servers) and self.backend != "ray":
            raise ConfigError("rollout.policy_url and rollout.env_servers are used by backend = 'ray' only; "
                              "set rollout.backend = 'ray'")


@dataclass(frozen=True, kw_only=True)
class TrainerSection:
    """The weight update after each iteration's rollouts."""

    algorithm: Literal["none", "rft", "grpo", "dpo"] = field(
        default="rft", metadata={"help": "none (memory only) | rft (ReST-EM) | grpo | dpo"})
    window: int = field(default=1, metadata={"help": "train on the trajectories of the last N iterations"})
    rft: RFTConfig = field(default_factory=RFTConfig, metadata={"help": "rejection-sampling fine-tuning"})
    grpo: GRPOConfig = field(default_factory=GRPOConfig, metadata={"help": "multi-turn GRPO"})
    dpo: DPOConfig = field(default_factory=DPOConfig, metadata={"help": "DPO on success/failure pairs"})

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ConfigError(f"trainer.window must be >= 1, got {self.window}")

    def algorithm_config(self) -> RFTConfig | GRPOConfig | DPOConfig | None:
        return None if self.algorithm == "none" else getattr(self, self.algorithm)


@dataclass(frozen=True, kw_only=True)
class TransferEval:
    """A task set the run never trains on, scored before training and after the last iteration.

    Each task is played greedily with ``max_attempts`` submissions (test feedback between them,
    where the env has it); the evaluation reports first-attempt success and success within
    ``max_attempts``, each with a 95% CI, and keeps per-task outcomes for paired comparisons.
    """

    name: str = field(metadata={"help": "label in the report and the store (split 'transfer:<name>')"})
    tasks: str = field(default="", metadata={
        "help": "task source NAME or NAME:PATH (e.g. humaneval); empty: the env's own source"})
    families: list[str] = field(default_factory=list, metadata={
        "help": "only held-out tasks of these families (e.g. families left out of env.families)"})
    difficulties: list[float] = field(default_factory=list, metadata={"help": "only tasks at these levels"})
    split: Literal["heldout", "train", "generated"] = field(default="heldout", metadata={"help": "split scored"})
    n_tasks: int = field(default=164, metadata={"help": "tasks (the source's fixed order)"})
    max_tokens: int | None = field(default=None, metadata={
        "help": "new tokens per turn in this evaluation (HumanEval solutions need ~384); unset: the agent's"})
    max_attempts: int | None = field(default=None, metadata={
        "help": "submissions per task, passed to the env as max_attempts (Code-v0: 3 is the usual self-debug "
                "budget); success within them is reported beside the first; unset: the env's setting"})

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ConfigError(f"eval.transfer name must be non-empty without '/', got {self.name!r}")
        if self.n_tasks < 1 or any(v is not None and v < 1 for v in (self.max_attempts, self.max_tokens)):
            raise ConfigError(f"eval.transfer {self.name!r}: n_tasks, max_attempts and max_tokens must be >= 1")


@dataclass(frozen=True, kw_only=True)
class EvalSection:
    """Held-out evaluation during the run."""

    every: int = field(default=1, metadata={"help": "evaluate after every N iterations (0: only before and after)"})
    before: bool = field(default=True, metadata={"help": "evaluate the starting policy (iteration 0)"})
    n_tasks: int = field(
        default=20, metadata={"help": "held-out tasks (the source's fixed order; of env.families when it is set)"})
    k: int = field(default=1, metadata={"help": "attempts per task (pass@k)"})
    difficulties: list[float] = field(
        default_factory=list, metadata={"help": "only held-out tasks at these difficulty levels (empty: all levels)"})
    split: Literal["heldout", "train", "generated"] = field(default="heldout", metadata={"help": "split scored"})
    tasks: str = field(default="", metadata={
        "help": "task source scored instead of the env's own: NAME or NAME:PATH (e.g. humaneval, for transfer); "
                "its tasks are also kept out of the teacher's proposals"})
    memory: bool = field(default=True, metadata={"help": "the evaluated agent reads memory (reflections, skills)"})
    temperature: float | None = field(
        default=0.0, metadata={"help": "sampling temperature of the evaluated agent (0: greedy; unset: the agent's)"})
    dtype: str | None = field(default=None, metadata={
        "help": "float32 | bfloat16 | float16: the evaluations generate with a copy of the current weights in "
                "this dtype (bfloat16: 2-3x faster than float32 at a batch of 64 on a CPU, with other greedy "
                "outputs); training keeps policy.dtype; unset: the policy's own weights"})
    transfer: list[TransferEval] = field(default_factory=list, metadata={
        "help": "task sets never trained on ([[eval.transfer]] tables), scored before and after: first-attempt "
                "success and success within max_attempts"})
    protect: list[str] = field(default_factory=list, metadata={
        "help": "more task sources (NAME or NAME:PATH, e.g. humaneval) whose held-out tasks are kept out of "
                "the teacher's proposals, whether or not the run scores them"})

    def __post_init__(self) -> None:
        if self.every < 0 or self.n_tasks < 1 or self.k < 1:
            raise ConfigError("eval.every must be >= 0, eval.n_tasks and eval.k >= 1")
        if self.k > 1 and self.temperature == 0:
            raise ConfigError("eval.k > 1 with eval.temperature = 0 repeats one greedy answer; set a temperature > 0")
        if self.dtype not in (None, "float32", "bfloat16", "float16"):
            raise ConfigError(f"eval.dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        names = [t.name for t in self.transfer]
        if len(set(names)) != len(names):
            raise ConfigError(f"eval.transfer names must differ, got {names}")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """One gym-loop run."""

    name: str = field(metadata={"help": "run id (also the default run directory under runs/)"})
    seed: int = field(default=0, metadata={"help": "seed of task choice and sampling"})
    iterations: int = field(default=3, metadata={"help": "loop iterations"})
    env: EnvSection = field(default_factory=EnvSection, metadata={"help": "environment and arms"})
    policy: PolicySection = field(default_factory=PolicySection, metadata={"help": "the model"})
    agent: AgentConfig = field(default_factory=AgentConfig, metadata={"help": "prompting and sampling"})
    rollout: RolloutSection = field(default_factory=RolloutSection, metadata={"help": "experience per iteration"})
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig, metadata={"help": "what to practise"})
    reflections: ReflectionConfig = field(
        default_factory=lambda: ReflectionConfig(enabled=False), metadata={"help": "Reflexion lessons from failures"})
    skills: SkillsConfig = field(default_factory=SkillsConfig, metadata={"help": "skill library (Voyager / SAGE)"})
    teacher: TeacherConfig = field(
        default_factory=TeacherConfig, metadata={"help": "new tasks from failures (Self-Challenging / WebRL)"})
    trainer: TrainerSection = field(default_factory=TrainerSection, metadata={"help": "weight updates"})
    eval: EvalSection = field(default_factory=EvalSection, metadata={"help": "held-out evaluation"})

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ConfigError(f"name must be a non-empty run id without '/', got {self.name!r}")
        if self.iterations < 1:
            raise ConfigError(f"iterations must be >= 1, got {self.iterations}")
        if self.rollout.backend == "ray" and (self.reflections.enabled or self.skills.mode != "off"):
            raise ConfigError("rollout.backend = 'ray' plays without memory (workers do not read the run's store); "
                              "set reflections.enabled = false and skills.mode = 'off', or use backend = 'local'")
        if self.trainer.algorithm == "grpo" and self.rollout.group_size < 2:
            raise ConfigError("trainer.algorithm = 'grpo' needs rollout.group_size >= 2 (advantages are group-relative)")
        if self.trainer.algorithm == "grpo" and self.agent.sampling.temperature <= 0:
            raise ConfigError("trainer.algorithm = 'grpo' needs agent.sampling.temperature > 0 (the trainer takes "
                              "log-probs at the rollouts' temperature; greedy rollouts carry no policy gradient)")
