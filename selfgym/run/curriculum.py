"""Curriculum: a learning-progress bandit over (family, difficulty) arms.

Each arm is a task family at one difficulty bin. After every iteration the loop reports the
successes per arm; the curriculum keeps a per-arm history of success rates and scores each arm by

* **absolute learning progress** (ALP, as in ALP-GMM): ``|recent success - earlier success|``.
  Arms where competence is moving (up, or down through forgetting) are worth practising;
* **learnability** ``4 p (1 - p)``: arms the student solves sometimes, not never and not always;
  or, with ``learnability = "band"``, WebRL's difficulty band: 1 when ``band_lo <= p <= band_hi``.

The sampling distribution mixes the normalised scores with an ``epsilon`` share of uniform
exploration; arms never tried get the highest score so each is tried once. The state is a plain
dict (``state_dict`` / ``load_state_dict``) that the loop saves in the run store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = ["Arm", "Curriculum", "CurriculumConfig"]


@dataclass(frozen=True, kw_only=True)
class CurriculumConfig:
    """How the curriculum scores and samples arms."""

    enabled: bool = field(default=True, metadata={"help": "off: sample arms uniformly"})
    window: int = field(default=2, metadata={"help": "iterations per window when comparing recent vs earlier success"})
    epsilon: float = field(default=0.2, metadata={"help": "share of samples drawn uniformly over arms (exploration)"})
    learnability_weight: float = field(
        default=0.5, metadata={"help": "weight of the learnability term against learning progress in an arm's score (0..1)"}
    )
    learnability: Literal["variance", "band"] = field(default="variance", metadata={
        "help": "variance: 4p(1-p) of the arm's success rate p | band: 1 when band_lo <= p <= band_hi (WebRL)"})
    band_lo: float = field(default=0.1, metadata={"help": "lowest success rate inside the band"})
    band_hi: float = field(default=0.9, metadata={"help": "highest success rate inside the band"})

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"curriculum.window must be >= 1, got {self.window}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"curriculum.epsilon must be in [0, 1], got {self.epsilon}")
        if not 0.0 <= self.learnability_weight <= 1.0:
            raise ValueError(f"curriculum.learnability_weight must be in [0, 1], got {self.learnability_weight}")
        if self.learnability not in ("variance", "band"):
            raise ValueError(f"curriculum.learnability must be 'variance' or 'band', got {self.learnability!r}")
        if not 0.0 <= self.band_lo <= self.band_hi <= 1.0:
            raise ValueError(f"curriculum needs 0 <= band_lo <= band_hi <= 1, got {self.band_lo}, {self.band_hi}")

    def learnability_of(self, p: float) -> float:
        """The learnability term for success rate ``p``."""
        if self.learnability == "band":
            return float(self.band_lo <= p <= self.band_hi)
        return 4 * p * (1 - p)


@dataclass(frozen=True)
class Arm:
    """A task family at one difficulty."""

    family: str
    difficulty: float

    @property
    def key(self) -> str:
        return f"{self.family}@{self.difficulty:.2f}"


class Curriculum:
    """Learning-progress bandit over arms (see module docstring)."""

    def __init__(self, arms: Iterable[Arm], config: CurriculumConfig | None = None) -> None:
        self.config = config or CurriculumConfig()
        self.arms: dict[str, Arm] = {}
        # per arm: list of (iteration, attempts, successes)
        self.history: dict[str, list[tuple[int, int, int]]] = {}
        for arm in arms:
            self.add_arm(arm)

    def add_arm(self, arm: Arm) -> None:
        """Add an arm (e.g. a family of generated tasks); a known arm is left as it is."""
        if arm.key not in self.arms:
            self.arms[arm.key] = arm
            self.history[arm.key] = []

    # ------------------------------------------------------------------ scores
    def success_rate(self, key: str, *, recent: bool = True) -> float | None:
        """Success rate over the last window (``recent``) or the window before it."""
        w = self.config.window
        rows = self.history[key][-w:] if recent else self.history[key][-2 * w:-w]
        attempts = sum(r[1] for r in rows)
        return None if attempts == 0 else sum(r[2] for r in rows) / attempts

    def scores(self) -> dict[str, float]:
        """Unnormalised score per arm; untried arms score above every tried one."""
        lw = self.config.learnability_weight
        raw: dict[str, float | None] = {}
        for key in self.arms:
            now, before = self.success_rate(key), self.success_rate(key, recent=False)
            if now is None:
                raw[key] = None
                continue
            progress = abs(now - before) if before is not None else 0.0
            raw[key] = (1 - lw) * progress + lw * self.config.learnability_of(now)
        tried = [v for v in raw.values() if v is not None]
        top = max(tried, default=0.0) + 1.0
        return {k: (top if v is None else v) for k, v in raw.items()}

    def probabilities(self) -> dict[str, float]:
        """The sampling distribution over arm keys."""
        n = len(self.arms)
        if n == 0:
            return {}
        uniform = {k: 1.0 / n for k in self.arms}
        if not self.config.enabled:
            return uniform
        scores = self.scores()
        total = sum(scores.values())
        if total <= 0:
            return uniform
        eps = self.config.epsilon
        return {k: eps / n + (1 - eps) * scores[k] / total for k in self.arms}

    # ------------------------------------------------------------------ sampling and updates
    def sample(self, n: int, rng: np.random.Generator) -> list[Arm]:
        """Draw ``n`` arms (with replacement) from ``probabilities()``."""
        probs = self.probabilities()
        if not probs:
            raise ValueError("the curriculum has no arms")
        keys = list(probs)
        p = np.asarray([probs[k] for k in keys])
        return [self.arms[keys[i]] for i in rng.choice(len(keys), size=n, p=p / p.sum())]

    def update(self, iteration: int, outcomes: Sequence[tuple[str, bool]]) -> None:
        """Record one iteration's outcomes as ``(arm key, success)`` pairs."""
        counts: dict[str, list[int]] = {}
        for key, success in outcomes:
            if key not in self.arms:
                raise KeyError(f"outcome for unknown arm {key!r}; add_arm it first")
            c = counts.setdefault(key, [0, 0])
            c[0] += 1
            c[1] += int(success)
        for key, (attempts, successes) in counts.items():
            self.history[key].append((iteration, attempts, successes))

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        return {"arms": [[a.family, a.difficulty] for a in self.arms.values()],
                "history": {k: [list(r) for r in v] for k, v in self.history.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for family, difficulty in state["arms"]:
            self.add_arm(Arm(family, float(difficulty)))
        for key, rows in state["history"].items():
            self.history[key] = [tuple(r) for r in rows]
