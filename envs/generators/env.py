"""``selfgym/ProposeTask-v0``: task proposal as an environment (Code-as-Task)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from selfgym.decontam import DecontamConfig, Decontaminator
from selfgym.envs.code.factory import code_sandbox
from selfgym.errors import ConfigError
from selfgym.types import Split, Task

from ..base import LLMEnv, StepResult
from ..tasks import TaskSource
from .context import ContextSource, example_task, oracle_proposal
from .judge import PassRates, ProposalJudge
from .proposal import Proposal, ProposalLimits, parse_proposal, proposal_task, render_proposal
from .reward import RewardKind

__all__ = ["ProposeTaskConfig", "ProposeTaskEnv", "code_sandbox", "default_heldout"]

HELDOUT_PER_FAMILY = 10


@dataclass(frozen=True, kw_only=True)
class ProposeTaskConfig:
    """How proposals are judged (``gymnasium.make("selfgym/ProposeTask-v0", reward="band")`` sets one)."""

    solver_attempts: int = field(default=4, metadata={"help": "solver episodes per valid proposal (G)"})
    reward: RewardKind = field(default="learnability", metadata={
        "help": "learnability: 4p(1-p) of the solver pass rate p | band: 1 when band_lo <= p <= band_hi"})
    band_lo: float = field(default=0.1, metadata={"help": "lowest useful solver pass rate (band reward)"})
    band_hi: float = field(default=0.9, metadata={"help": "highest useful solver pass rate (band reward)"})
    decontam: DecontamConfig = field(default_factory=DecontamConfig, metadata={
        "help": "closeness to a held-out task that rejects a proposal"})
    duplicate: DecontamConfig = field(default_factory=DecontamConfig, metadata={
        "help": "closeness to an existing task that makes a proposal a duplicate (not novel)"})
    limits: ProposalLimits = field(default_factory=ProposalLimits, metadata={"help": "what a proposal must contain"})

    def __post_init__(self) -> None:
        if self.solver_attempts < 1:
            raise ConfigError(f"solver_attempts must be >= 1, got {self.solver_attempts}")
        if self.reward not in ("learnability", "band"):
            raise ConfigError(f"reward must be 'learnability' or 'band', got {self.reward!r}")
        if not 0.0 <= self.band_lo <= self.band_hi <= 1.0:
            raise ConfigError(f"need 0 <= band_lo <= band_hi <= 1, got {self.band_lo}, {self.band_hi}")


def default_heldout() -> list[Task]:
    """The protected set when none is given: the first held-out tasks of every code family."""
    from selfgym.envs.code.families import FAMILIES

    return [t for family in FAMILIES.values() for t in family.tasks("heldout", limit=HELDOUT_PER_FAMILY)]


class ProposeTaskEnv(LLMEnv):
    """Propose a new code task (instruction, tests, reference, failing examples) for a student who failed one.

    Observation:
        A context: the target family, a summary of a failed task (the student's answer and its
        feedback when known), example tasks of the family, and the proposal format
        (``PROPOSAL_FORMAT``). After the proposal: the verdict (why it was rejected, or the
        solver's pass rate and the reward).

    Actions:
        A proposal in the markdown format of ``selfgym.envs.generators.proposal`` (or the same keys
        as one JSON object). A proposal that does not parse is a malformed action: the error is
        the next observation and the proposer may try again within the turn budget.

    Rewards:
        validity x learnability x novelty, in [0, 1]. Validity: the reference passes every test in
        the sandbox and each failing example fails one (else 0). Learnability: ``4p(1-p)`` of the
        solver's pass rate ``p`` over ``solver_attempts`` episodes in ``Code-v0``, or the band
        ``band_lo <= p <= band_hi``; 1 when no solver is given. Novelty: 0 when the task is too
        close to a held-out task (decontamination) or to a known task (duplicate), else 1.

    Episode End:
        Terminated after the first proposal that parses; truncated after ``max_episode_steps``
        (3 at registration) malformed ones. When every solver episode was aborted (an
        infrastructure failure) the proposal is not judged: reward 0 and ``info["aborted"]``, so
        the episode is counted as aborted, never scored.

    Arguments:
        task_source: contexts (default ``ContextSource()``: failed train tasks of the code families).
        pass_rates: the solver's pass rates on valid proposals (``PassRates``; the runner's
            ``selfgym.run.passrates.rollout_pass_rates(agent)`` plays them in ``Code-v0``); None:
            learnability is not measured.
        heldout: tasks no proposal may be close to (default: the code families' first held-out tasks).
        known: existing tasks a proposal may not duplicate (the context's tasks are always added).
        sandbox: as for ``Code-v0``.
        config: ``ProposeTaskConfig``; its fields can also be given as keyword arguments.
        split, difficulty, render_mode: see ``LLMEnv``.

    Version History:
        v0: initial version.
    """

    def __init__(
        self,
        *,
        task_source: TaskSource | None = None,
        split: Split = "train",
        difficulty: float | None = None,
        render_mode: str | None = None,
        config: ProposeTaskConfig | None = None,
        pass_rates: PassRates | None = None,
        heldout: Iterable[Task] | None = None,
        known: Iterable[Task] = (),
        sandbox: Any = None,
        **overrides: Any,
    ) -> None:
        self.config = dataclasses.replace(config or ProposeTaskConfig(), **overrides)
        super().__init__(task_source=task_source, split=split, difficulty=difficulty, render_mode=render_mode)
        self.pass_rates = pass_rates
        self._heldout = list(heldout) if heldout is not None else default_heldout()
        self._known = [*known, example_task()]  # a copy of the worked example is not a new task
        self._sandbox_spec = sandbox
        self._judge: ProposalJudge | None = None
        self._context_screen: Decontaminator | None = None
        self.last_task: Task | None = None

    def default_task_source(self) -> TaskSource:
        return ContextSource()

    def instructions(self, task: Task) -> str:
        return ("Propose one new programming task for the student, in the format the observation shows: "
                "instruction, entry point, assert tests, a reference solution and wrong solutions the tests catch.")

    def setup(self, task: Task) -> str:
        context = [Task.from_dict(t) for t in [task.payload.get("parent"), *task.payload.get("examples", [])] if t]
        if self._judge is None:
            self._judge = ProposalJudge(self.config, heldout=self._heldout, known=self._known,
                                        sandbox=code_sandbox(self._sandbox_spec), pass_rates=self.pass_rates)
        self._context_screen = Decontaminator(context, self.config.duplicate)
        self.last_task = None
        return task.prompt

    def parse_action(self, action: str) -> Proposal:
        return parse_proposal(action, self.config.limits)

    def env_response(self, proposal: Proposal) -> StepResult:
        assert self.task is not None and self._judge is not None
        parent = self.task.payload.get("parent") or {}
        task = proposal_task(proposal, parent_id=parent.get("id"), source="propose-task")
        # remember=False: each episode is judged against the same known tasks, as a fresh proposer would be
        judgement = self._judge.judge([(proposal, task)], also_known=self._context_screen, remember=False)[0]
        info: dict[str, Any] = {"valid": judgement.status != "invalid", "reason": judgement.reason,
                                "pass_rate": judgement.pass_rate, "status": judgement.status}
        if judgement.status == "invalid":
            return StepResult(observation=f"Rejected (invalid): {judgement.reason}", terminated=True, info=info)
        if judgement.status in ("decontam", "duplicate"):
            detail = (judgement.reason or "").split(": ", 1)[-1]
            return StepResult(observation=f"Rejected ({judgement.status}): {detail}", terminated=True, info=info)
        if judgement.status == "aborted":  # an infrastructure failure, not the proposer's: counted, never scored
            info["aborted"] = judgement.reason
            return StepResult(observation=f"Not judged: {judgement.reason}; the learnability of the proposal is "
                              "unknown.", terminated=True, info=info)
        self.last_task = judgement.task
        p = judgement.pass_rate
        measured = "not measured (no solver)" if p is None else f"{p:.2f}"
        return StepResult(observation=f"Accepted: valid and novel. Solver pass rate: {measured}. "
                          f"Reward {judgement.reward:.2f}.", reward=judgement.reward, terminated=True,
                          success=judgement.reward > 0, info=info)

    def oracle_action(self) -> str:
        assert self.task is not None
        return render_proposal(oracle_proposal(Task.from_dict(self.task.payload["parent"])))
