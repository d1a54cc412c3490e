"""The one judge of task proposals, used by the ``ProposeTask-v0`` env and by the teacher.

A proposal is judged in order: **validity** (its reference passes its tests in the sandbox and each
failing example fails one), **novelty** (not close to a held-out task: decontamination; not a copy
of a known task or of an earlier proposal of the same batch), then **learnability** from the
solver's pass rate ``p`` over ``attempts`` episodes (``4p(1-p)`` or WebRL's band). The pass rates
come from an injected ``PassRates`` function, so this package never plays rollouts itself; the
runner provides one backed by batched rollouts (``selfgym.run.passrates.rollout_pass_rates``).

When every solver episode of a proposal was aborted (an infrastructure failure, the pass rate is
NaN) the proposal is not judged: status ``aborted``, reward 0, never accepted.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from selfgym.decontam import Decontaminator, Match
from selfgym.types import Task

from .proposal import Proposal, validate_proposal
from .reward import learnability_factor

__all__ = ["Judgement", "PassRates", "ProposalJudge", "Status"]

PassRates = Callable[[Sequence[Task], int], Sequence[float]]
"""``(tasks, attempts) -> pass rate per task`` over ``attempts`` solver episodes each, NaN for a task
whose every episode was aborted."""

Status = Literal["invalid", "decontam", "duplicate", "aborted", "learnability", "accepted"]


@dataclass(kw_only=True)
class Judgement:
    """The verdict on one proposal; ``task`` is set once the proposal is valid and novel."""

    status: Status
    reason: str | None = None
    task: Task | None = None
    pass_rate: float | None = None  # None: not measured (no solver, or never reached)
    factor: float = 0.0  # the learnability factor (1 when not measured)

    @property
    def reward(self) -> float:
        """validity x learnability x novelty: the factor for a valid, novel, judged proposal, else 0."""
        return self.factor if self.status in ("accepted", "learnability") else 0.0


class ProposalJudge:
    """Judges proposals with one set of rules (``config`` is a ``ProposeTaskConfig``).

    Args:
        heldout: tasks no proposal may be close to.
        known: tasks a proposal may not duplicate (more are added as proposals pass).
        sandbox: where references and failing examples run (a started ``Sandbox``).
        pass_rates: the solver's pass rates; None: learnability is not measured (factor 1).
        min_reward: a judged proposal is accepted only when its factor is above this.
    """

    def __init__(self, config: Any, *, heldout: Iterable[Task], known: Iterable[Task], sandbox: Any,
                 pass_rates: PassRates | None = None, min_reward: float = 0.0) -> None:
        self.config = config
        self.heldout = Decontaminator(heldout, config.decontam)
        self.known = Decontaminator(known, config.duplicate)
        self.sandbox = sandbox
        self.pass_rates = pass_rates
        self.min_reward = min_reward

    def screen(self, proposal: Proposal, task: Task, *, also_known: Decontaminator | None = None,
               remember: bool = True) -> Judgement | None:
        """Validity and novelty; None when the proposal passes both (with ``remember`` it is then
        known: later proposals may not copy it)."""
        validation = validate_proposal(proposal, self.sandbox)
        if not validation.valid:
            return Judgement(status="invalid", reason=validation.reason)
        text = proposal.prompt()
        checks: tuple[tuple[Status, Decontaminator | None], ...] = (
            ("decontam", self.heldout), ("duplicate", self.known), ("duplicate", also_known))
        for status, screen in checks:
            match: Match | None = screen.check(text) if screen is not None else None
            if match is not None:
                return Judgement(status=status, reason=f"{status}: {match.describe()}")
        if remember:
            self.known.add([task])
        return None

    def judge(self, candidates: Sequence[tuple[Proposal, Task]], *, also_known: Decontaminator | None = None,
              remember: bool = True) -> list[Judgement]:
        """Every candidate ``(proposal, its task)`` judged; the pass rates of all that are valid and
        novel measured in one call. A measured task's difficulty becomes ``1 - p``. With
        ``remember``, each valid novel proposal joins the known tasks (a batch may not repeat itself)."""
        judgements: list[Judgement | None] = [self.screen(p, t, also_known=also_known, remember=remember)
                                              for p, t in candidates]
        survivors = [i for i, j in enumerate(judgements) if j is None]
        rates: list[float | None] = [None] * len(survivors)
        if self.pass_rates is not None and survivors:
            rates = list(self.pass_rates([candidates[i][1] for i in survivors], self.config.solver_attempts))
        for i, rate in zip(survivors, rates, strict=True):
            judgements[i] = self._learnability(candidates[i][1], rate)
        return [j for j in judgements if j is not None]

    def _learnability(self, task: Task, rate: float | None) -> Judgement:
        if rate is not None and math.isnan(rate):  # an infrastructure failure, not the proposer's
            reason = f"every one of the {self.config.solver_attempts} solver episodes was aborted"
            return Judgement(status="aborted", reason=reason, task=task)
        factor = learnability_factor(rate, self.config.reward, lo=self.config.band_lo, hi=self.config.band_hi)
        if rate is not None:
            task = dataclasses.replace(task, difficulty=1.0 - rate)
        if rate is not None and not factor > self.min_reward:
            return Judgement(status="learnability", task=task, pass_rate=rate, factor=factor,
                             reason=f"solver pass rate {rate:.2f} gives learnability {factor:.2f}")
        return Judgement(status="accepted", task=task, pass_rate=rate, factor=factor)
