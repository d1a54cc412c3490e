"""The contract every selfgym environment follows: ``LLMEnv``.

An ``LLMEnv`` is a ``gymnasium.Env[str, str]``: observations and actions are text. The env owns
resources (sandbox, browser, database); the task owns meaning (prompt, verifier, oracle).

A subclass overrides a handful of hooks::

    class Reverse(LLMEnv):
        def setup(self, task):            # -> first observation
            return task.prompt
        def env_response(self, action):   # -> StepResult
            ok = action.strip() == task.payload["answer"]
            return StepResult(observation="correct" if ok else "wrong", reward=float(ok),
                              terminated=ok, success=ok)

and optionally ``parse_action`` (raise ``ActionError`` for a malformed action: the agent sees the
message as its next observation), ``instructions``, ``tools``, ``oracle_action`` and ``teardown``.
Turn budgets are ``max_episode_steps`` at registration (gymnasium's ``TimeLimit``), so running out
of turns is ``truncated``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, cast

import gymnasium
from gymnasium.error import ResetNeeded
from gymnasium.spaces import Text

from selfgym.errors import ActionError, UnknownTaskError
from selfgym.types import Split, Task

from .tasks import TaskSource

__all__ = [
    "ACTION_SPACE",
    "OBSERVATION_SPACE",
    "TEXT_CHARSET",
    "LLMEnv",
    "StepResult",
    "llm_env",
    "to_text",
]

# Printable text: tab/newline/CR, printable ASCII and the rest of the Basic Multilingual Plane
# minus C1 controls and surrogates. gymnasium's default Text charset is alphanumeric only, which
# would reject code and newlines.
_RANGES = ((0x20, 0x7E), (0xA0, 0xD7FF), (0xE000, 0xFFFD))
TEXT_CHARSET: frozenset[str] = frozenset(
    "\t\n\r" + "".join(chr(c) for lo, hi in _RANGES for c in range(lo, hi + 1))
)
_OUTSIDE_CHARSET = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd]")
REPLACEMENT = "\ufffd"

MAX_OBSERVATION_CHARS = 1 << 17
MAX_ACTION_CHARS = 1 << 15
# Built once and shared: a Text space over ~63k characters costs a few MB.
OBSERVATION_SPACE = Text(MAX_OBSERVATION_CHARS, min_length=0, charset=TEXT_CHARSET)
ACTION_SPACE = Text(MAX_ACTION_CHARS, min_length=0, charset=TEXT_CHARSET)


def to_text(text: str, max_chars: int = MAX_OBSERVATION_CHARS) -> str:
    """Make ``text`` a member of the observation space: replace control/non-BMP characters, clip."""
    text = _OUTSIDE_CHARSET.sub(REPLACEMENT, text)
    if len(text) > max_chars:
        note = f"\n...[{len(text) - max_chars + 40} characters cut]"
        text = text[: max_chars - len(note)] + note
    return text


@dataclass(kw_only=True)
class StepResult:
    """What ``LLMEnv.env_response`` returns for a well-formed action."""

    observation: str
    reward: float = 0.0
    terminated: bool = False
    success: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class LLMEnv(gymnasium.Env[str, str]):
    """Base class of text environments for LLM agents.

    Observation:
        Text (``OBSERVATION_SPACE``): the task prompt after ``reset``, then the env's answer to each
        action. Characters outside ``TEXT_CHARSET`` are replaced; long observations are clipped.

    Actions:
        Text (``ACTION_SPACE``). Each env documents its action format. A malformed action is never
        an exception: the next observation says what was wrong (``info["action_error"]``) and the
        step counts against the turn budget.

    Rewards:
        Defined by the subclass; ``invalid_action_reward`` (default 0) for malformed actions.

    Episode End:
        ``terminated`` when the subclass says so (solved, or no attempts left);
        ``truncated`` when the ``max_episode_steps`` given at registration runs out.

    Arguments:
        task_source: where ``reset`` samples tasks from (default: ``default_task_source()``).
        split: the split ``reset`` samples from unless ``options["task"]`` names a task.
        difficulty: passed to the task source when sampling (procedural families).
        render_mode: ``"ansi"`` (``render()`` returns the dialogue) or ``"human"`` (prints it).

    ``reset(seed=s)`` with the same ``s`` gives the same task and first observation.
    ``info`` from ``reset`` has ``task``, ``instructions`` and ``tools``; every ``step`` info has
    ``success`` and ``action_error``.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi", "human"], "render_fps": 4}
    observation_space = OBSERVATION_SPACE
    action_space = ACTION_SPACE
    invalid_action_reward: float = 0.0

    def __init__(
        self,
        *,
        task_source: TaskSource | None = None,
        split: Split = "train",
        difficulty: float | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.task_source = task_source if task_source is not None else self.default_task_source()
        self.split: Split = split
        self.difficulty = difficulty
        self.task: Task | None = None
        self.transcript: list[tuple[str, str]] = []  # (speaker, text), for render()
        self._done = True

    # ----------------------------------------------------------------- hooks for subclasses
    def default_task_source(self) -> TaskSource:
        """The task source used when none is given."""
        raise TypeError(f"{type(self).__name__} needs a task_source= (it has no default one)")

    def instructions(self, task: Task) -> str:
        """How to act in this env: the action format. Goes into the agent's system prompt."""
        return ""

    def tools(self) -> list[dict[str, Any]]:
        """JSON-schema tool descriptions (OpenAI function-calling format), if the env has tools."""
        return []

    def setup(self, task: Task) -> str:
        """Prepare the episode for ``task``; return the first observation."""
        return task.prompt

    def parse_action(self, action: str) -> Any:
        """Turn the action text into what ``env_response`` takes. Raise ``ActionError`` if malformed."""
        return action

    def env_response(self, action: Any) -> StepResult:
        """Apply a well-formed action."""
        raise NotImplementedError

    def oracle_action(self) -> str:
        """A correct next action for the current state (used by the scripted agent and the tests)."""
        raise NotImplementedError(f"{type(self).__name__} has no oracle")

    def teardown(self) -> None:
        """Release per-episode resources (called before the next reset and on close)."""

    # ----------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        if self.task is not None:
            self.teardown()
        self.task = self._choose_task(options or {})
        self._done = False
        observation = to_text(self.setup(self.task))
        self.transcript = [("task", observation)]
        info = {
            "task": self.task,
            "instructions": self.instructions(self.task),
            "tools": self.tools(),
            "success": False,
            "action_error": None,
        }
        return observation, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._done or self.task is None:
            raise ResetNeeded("call reset() before step(): the episode has ended or not begun")
        if not isinstance(action, str):
            raise TypeError(f"actions are str, got {type(action).__name__}")
        self.transcript.append(("agent", action))
        try:
            if len(action) > MAX_ACTION_CHARS:
                raise ActionError(f"action is {len(action)} characters long; the limit is {MAX_ACTION_CHARS}")
            result = self.env_response(self.parse_action(action))
            error = None
        except ActionError as exc:
            error = str(exc) or type(exc).__name__
            result = StepResult(observation=f"Invalid action: {error}", reward=self.invalid_action_reward)
        observation = to_text(result.observation)
        self.transcript.append(("env", observation))
        self._done = result.terminated
        info = {**result.info, "success": result.success, "action_error": error}
        return observation, float(result.reward), result.terminated, False, info

    def render(self) -> str | None:
        text = self._render_text()
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        if self.task is not None:
            self.teardown()
            self.task = None
        super().close()

    # ----------------------------------------------------------------- helpers
    def _choose_task(self, options: dict[str, Any]) -> Task:
        chosen = options.get("task")
        if isinstance(chosen, Task):
            return chosen
        if isinstance(chosen, str):
            try:
                return self.task_source.get(chosen)
            except KeyError as exc:
                raise UnknownTaskError(f"task {chosen!r} is not in task source {self.task_source.name!r}") from exc
        if chosen is not None:
            raise TypeError(f'options["task"] must be a Task or a task id, got {type(chosen).__name__}')
        split = options.get("split", self.split)
        difficulty = options.get("difficulty", self.difficulty)
        return self.task_source.sample(self.np_random, split=split, difficulty=difficulty)

    def _render_text(self) -> str:
        labels = {"task": "TASK", "agent": "AGENT", "env": "ENV"}
        return "\n".join(f"[{labels[who]}] {text}" for who, text in self.transcript) + "\n"


def llm_env(env: gymnasium.Env) -> LLMEnv:
    """The env under gymnasium's wrappers (``TimeLimit``, checkers), typed as an ``LLMEnv`` (a
    plugin env only needs the same attributes: ``task_source``, ``task``, ``oracle_action``)."""
    return cast(LLMEnv, env.unwrapped)
