"""``selfgym/Guess-v0``: find a hidden integer from higher/lower feedback.

The smallest complete multi-turn environment: it exercises the reset/step contract, feedback
observations, malformed actions and the turn budget without any heavy resource.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from selfgym.errors import ActionError
from selfgym.types import Task

from .base import LLMEnv, StepResult
from .tasks import ProceduralTaskSource, TaskSource

__all__ = ["GuessEnv", "GuessTasks"]

_INTEGER = re.compile(r"-?\d+")


class GuessTasks(ProceduralTaskSource):
    """Hidden integers in ``[1, high]``; ``high`` grows from 8 (difficulty 0) to 1024 (difficulty 1)."""

    family = "guess"

    def generate(self, rng: np.random.Generator, difficulty: float) -> tuple[str, dict[str, Any]]:
        high = int(round(2 ** (3 + 7 * difficulty)))
        secret = int(rng.integers(1, high + 1))
        prompt = f"I am thinking of an integer between 1 and {high}. Guess it."
        return prompt, {"secret": secret, "low": 1, "high": high}


class GuessEnv(LLMEnv):
    """Guess a hidden integer.

    Observation:
        The task ("I am thinking of an integer between 1 and N"), then ``higher``, ``lower`` or
        ``correct`` after each guess.

    Actions:
        Text containing one integer, e.g. ``"42"`` or ``"My guess is 42."``. No integer, or more
        than one, is a malformed action.

    Rewards:
        1 for the correct guess, 0 otherwise.

    Episode End:
        Terminated on the correct guess; truncated after ``max_episode_steps`` (12 at registration).

    Arguments:
        See ``LLMEnv``. The default task source is ``GuessTasks``.

    Version History:
        v0: initial version.
    """

    def default_task_source(self) -> TaskSource:
        return GuessTasks()

    def instructions(self, task: Task) -> str:
        return "Reply with a single integer: your guess. You will be told whether the number is higher or lower."

    def setup(self, task: Task) -> str:
        self._low, self._high = task.payload["low"], task.payload["high"]
        return task.prompt

    def parse_action(self, action: str) -> int:
        numbers = _INTEGER.findall(action)
        if len(numbers) != 1:
            found = "no integer" if not numbers else f"{len(numbers)} integers ({', '.join(numbers[:5])})"
            raise ActionError(f"reply with exactly one integer; found {found}")
        return int(numbers[0])

    def env_response(self, guess: int) -> StepResult:
        assert self.task is not None
        secret = self.task.payload["secret"]
        if guess == secret:
            return StepResult(observation="correct", reward=1.0, terminated=True, success=True)
        if guess < secret:
            self._low = max(self._low, guess + 1)
            return StepResult(observation=f"higher (the number is greater than {guess})")
        self._high = min(self._high, guess - 1)
        return StepResult(observation=f"lower (the number is less than {guess})")

    def oracle_action(self) -> str:
        return str((self._low + self._high) // 2)
