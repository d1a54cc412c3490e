"""``selfgym/Code-v0``: write a function, get test feedback, fix it (multi-turn self-debugging)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from selfgym.errors import ActionError, ConfigError
from selfgym.types import ExecResult, Split, Task

from ..base import LLMEnv, StepResult
from ..tasks import TaskSource
from .extract import extract_code, parse_tool_call
from .factory import code_sandbox
from .feedback import FeedbackMode, format_feedback
from .sandbox import Sandbox, SandboxConfig
from .verifier import Verdict, VerifierConfig, test_kind, verify

__all__ = ["CodeEnv", "CodeEnvConfig"]

RUN_TOOL = "run_python"
SUBMIT_TOOL = "submit"
MAX_RUN_OUTPUT = 1500


@dataclass(frozen=True, kw_only=True)
class CodeEnvConfig:
    """Episode rules of ``CodeEnv`` (``gymnasium.make("selfgym/Code-v0", max_attempts=5)`` sets one)."""

    max_attempts: int = field(default=3, metadata={"help": "submissions allowed per episode (self-debug rounds)"})
    partial_credit: bool = field(default=False, metadata={
        "help": "a final failed attempt earns the fraction of tests it passed instead of 0"})
    feedback: FeedbackMode = field(default="first_failure", metadata={
        "help": "first_failure | all_failures | summary (no test inputs shown)"})
    show_tests: bool = field(default=False, metadata={"help": "list every hidden test in the task prompt"})
    allow_run: bool = field(default=False, metadata={
        "help": f"offer the `{RUN_TOOL}` tool: run code on your own inputs without using an attempt"})
    run_timeout_s: float = field(default=5.0, metadata={"help": f"time limit of one `{RUN_TOOL}` call"})
    verifier: VerifierConfig = field(default_factory=VerifierConfig, metadata={"help": "test time/memory limits"})

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"CodeEnvConfig.max_attempts must be >= 1, got {self.max_attempts}")
        if self.feedback not in ("first_failure", "all_failures", "summary"):
            raise ConfigError(f"CodeEnvConfig.feedback must be first_failure, all_failures or summary, "
                              f"got {self.feedback!r}")


class _Action(NamedTuple):
    kind: str  # "submit" | "run"
    code: str
    stdin: str | None = None


def _run_tool_schema() -> list[dict[str, Any]]:
    def tool(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
        return {"type": "function", "function": {"name": name, "description": description, "parameters": {
            "type": "object", "properties": properties, "required": ["code"], "additionalProperties": False}}}

    code = {"type": "string", "description": "Python source"}
    return [
        tool(RUN_TOOL, "Run Python code in a sandbox and see its output. Your last submission is importable as "
             "`solution`. Does not use an attempt.", {"code": code, "stdin": {"type": "string"}}),
        tool(SUBMIT_TOOL, "Submit your solution to the hidden tests (uses an attempt).", {"code": code}),
    ]


class CodeEnv(LLMEnv):
    """Write a Python function (or program) that passes hidden tests, with test feedback between attempts.

    Observation:
        The task: what to write, the signature and a couple of examples (HumanEval: the stub). After a
        failed attempt: which test failed, expected vs got, or the error and the last lines of its
        traceback, and how many attempts are left. After a ``run_python`` call: its output.

    Actions:
        A reply containing the code: a ```python block (the block defining the function wins) or raw
        code; a body alone is completed from the task's stub. With ``allow_run``, also tool calls
        ``<tool_call>{"name": "run_python", "arguments": {"code": "..."}}</tool_call>`` and ``submit``.
        A reply without code is a malformed action (an error observation; no attempt is used).

    Rewards:
        1 when all hidden tests pass; 0 for a failed attempt, except that with ``partial_credit`` the
        last failed attempt earns the fraction of tests passed. Episode returns are in [0, 1].

    Episode End:
        Terminated on success or after ``max_attempts`` failed submissions; truncated when the turn
        budget (``max_episode_steps``, 6 at registration) runs out. A sandbox that breaks raises
        ``SandboxError`` (the episode runner marks the episode aborted).

    Arguments:
        task_source: a ``TaskSource`` or a registered name (``code``, ``humaneval``, ...); default:
            the seven procedural families (``families=`` picks some).
        sandbox: a ``Sandbox`` (used as is), a ``SandboxConfig`` or a backend name; envs given the
            same configuration share one warm pool for the whole process. Default: ``SandboxConfig()``
            (bwrap where it works, else docker; never the unisolated backend unless asked for).
        config: ``CodeEnvConfig``; its fields can also be given as keyword arguments.
        split, difficulty, render_mode: see ``LLMEnv``.

    Version History:
        v0: initial version.
    """

    def __init__(
        self,
        *,
        task_source: TaskSource | str | None = None,
        split: Split = "train",
        difficulty: float | None = None,
        render_mode: str | None = None,
        config: CodeEnvConfig | None = None,
        sandbox: Sandbox | SandboxConfig | str | None = None,
        families: list[str] | str | None = None,
        **overrides: Any,
    ) -> None:
        config = config or CodeEnvConfig()
        unknown = set(overrides) - {f.name for f in dataclasses.fields(CodeEnvConfig)}
        if unknown:
            raise TypeError(f"CodeEnv got unknown arguments {sorted(unknown)}; CodeEnvConfig fields are "
                            f"{[f.name for f in dataclasses.fields(CodeEnvConfig)]}")
        self.config = dataclasses.replace(config, **overrides)
        self._families = families
        if isinstance(task_source, str):
            from selfgym.registry import make_task_source

            task_source = make_task_source(task_source)
        super().__init__(task_source=task_source, split=split, difficulty=difficulty, render_mode=render_mode)
        self._sandbox_spec = sandbox
        self._sandbox: Sandbox | None = sandbox if isinstance(sandbox, Sandbox) else None
        self.attempts = 0
        self.last_code: str | None = None
        self.last_verdict: Verdict | None = None
        # modules placed next to the agent's code in every run (e.g. ``skills.py`` from a skill library)
        self.extra_files: dict[str, str] = {}

    # ----------------------------------------------------------------- resources
    @property
    def sandbox(self) -> Sandbox:
        """The sandbox, started on first use (the shared warm pool unless one was given)."""
        if self._sandbox is None:
            self._sandbox = code_sandbox(self._sandbox_spec)  # envs with the same config share one warm pool
        return self._sandbox

    # ----------------------------------------------------------------- LLMEnv hooks
    def default_task_source(self) -> TaskSource:
        from .families import code_tasks

        return code_tasks(self._families)

    def instructions(self, task: Task) -> str:
        what = ("a complete Python program that reads standard input and prints the answer"
                if test_kind(task.payload) == "stdio" else "the complete Python function")
        text = (f"Solve the programming task. Reply with {what} in a ```python code block. Your code is run "
                f"against hidden tests; you have {self.config.max_attempts} attempts, and after a failed attempt "
                "you are told which test failed.")
        if self.config.allow_run:
            text += (f' To try code first, call <tool_call>{{"name": "{RUN_TOOL}", "arguments": {{"code": "..."}}}}'
                     "</tool_call>; it shows the output and does not use an attempt.")
        return text

    def tools(self) -> list[dict[str, Any]]:
        return _run_tool_schema() if self.config.allow_run else []

    def setup(self, task: Task) -> str:
        self.attempts = 0
        self.last_code = None
        self.last_verdict = None
        if not self.config.show_tests or test_kind(task.payload) == "check":
            return task.prompt
        return task.prompt + "\n\nHidden tests:\n" + "\n".join(_describe_tests(task.payload))

    def parse_action(self, action: str) -> _Action:
        assert self.task is not None
        payload = self.task.payload
        call = parse_tool_call(action)
        if call is not None:
            name, arguments = call
            if name == RUN_TOOL and self.config.allow_run:
                if not isinstance(arguments.get("code"), str):
                    raise ActionError(f'{RUN_TOOL} needs a "code" string argument')
                return _Action("run", arguments["code"], arguments.get("stdin"))
            if name == SUBMIT_TOOL and isinstance(arguments.get("code"), str):
                action = arguments["code"]
            else:
                known = [RUN_TOOL, SUBMIT_TOOL] if self.config.allow_run else [SUBMIT_TOOL]
                raise ActionError(f"unknown tool {name!r} or missing 'code'; available: {', '.join(known)}")
        return _Action("submit", extract_code(action, entry_point=payload.get("entry_point"), stub=payload.get("stub")))

    def env_response(self, action: _Action) -> StepResult:
        assert self.task is not None
        if action.kind == "run":
            files = {**self.extra_files, **({"solution.py": self.last_code} if self.last_code else {})}
            result = self.sandbox.exec(action.code, stdin=action.stdin, files=files or None,
                                       timeout_s=self.config.run_timeout_s)
            return StepResult(observation=_describe_run(result), info={"tool": RUN_TOOL, "attempt": self.attempts})
        self.attempts += 1
        self.last_code = action.code
        verdict = self.last_verdict = verify(self.sandbox, action.code, self.task.payload, self.config.verifier,
                                             files=self.extra_files)
        info = {"attempt": self.attempts, "tests_passed": verdict.n_passed, "tests_total": verdict.n_tests,
                "problem": verdict.problem_kind, "turn_info": {"attempt": self.attempts}}
        if verdict.passed:
            return StepResult(observation=format_feedback(verdict), reward=1.0, terminated=True, success=True, info=info)
        left = self.config.max_attempts - self.attempts
        feedback = format_feedback(verdict, mode=self.config.feedback)
        if left <= 0:
            reward = verdict.fraction if self.config.partial_credit else 0.0
            return StepResult(observation=f"Attempt {self.attempts} of {self.config.max_attempts} failed. {feedback}\n"
                              "No attempts left.", reward=reward, terminated=True, info=info)
        return StepResult(observation=f"Attempt {self.attempts} of {self.config.max_attempts} failed. {feedback}\n"
                          f"Fix the code and reply with the complete corrected version ({left} attempt"
                          f"{'s' if left > 1 else ''} left).", info=info)

    def oracle_action(self) -> str:
        assert self.task is not None
        reference = self.task.payload.get("reference")
        if not reference:
            raise NotImplementedError(f"task {self.task.id!r} has no reference solution")
        return f"```python\n{reference.rstrip()}\n```"


def _describe_tests(payload: dict[str, Any]) -> list[str]:
    kind = test_kind(payload)
    if kind == "call":
        return [f"{payload['entry_point']}({t['args'][1:-1].removesuffix(',')}) == {t['expected']}"
                for t in payload["tests"]]
    if kind == "stdio":
        return [f"input {t['input']!r} -> output {t['output']!r}" for t in payload["tests"]]
    return list(payload["tests"])


def _describe_run(result: ExecResult) -> str:
    def clip(text: str) -> str:
        return text if len(text) <= MAX_RUN_OUTPUT else text[:MAX_RUN_OUTPUT] + "\n...[output cut]"

    head = "timed out" if result.timed_out else "out of memory" if result.oom else f"exit code {result.exit_code}"
    parts = [f"[{RUN_TOOL}: {head}]"]
    if result.stdout:
        parts.append("stdout:\n" + clip(result.stdout.rstrip()))
    if result.stderr:
        parts.append("stderr:\n" + clip(result.stderr.rstrip()))
    return "\n".join(parts)
