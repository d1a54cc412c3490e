"""``selfgym/Tools-v0``: an agent calls JSON-schema tools that act on a per-episode state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from selfgym.errors import ActionError, ConfigError
from selfgym.types import Split, Task

from ..base import LLMEnv, StepResult
from ..tasks import TaskSource
from .calls import FinalAnswer, ToolCall, parse_tool_action
from .family import AnswerFamily, EpisodeContext, MixedTasks, ToolFamily
from .runtime import CallOutcome, Toolbox, ToolRunner
from .schema import Tool

if TYPE_CHECKING:
    from .mcp_tools import MCPConnection, MCPServerConfig

__all__ = ["ToolEnv", "ToolEnvConfig", "default_families", "default_task_source"]


@dataclass(frozen=True, kw_only=True)
class ToolEnvConfig:
    """How tool calls are run and shown."""

    tool_timeout_s: float | None = field(default=5.0, metadata={
        "help": "seconds a tool call may run (a tool's own timeout_s wins); None runs tools inline, without one"})
    max_calls_per_action: int = field(default=8, metadata={"help": "tool calls allowed in one action"})
    max_result_chars: int = field(default=4000, metadata={"help": "a longer tool result is cut to this length"})

    def __post_init__(self) -> None:
        if self.tool_timeout_s is not None and self.tool_timeout_s <= 0:
            raise ConfigError(f"tool_timeout_s must be > 0 or None, got {self.tool_timeout_s}")
        if self.max_calls_per_action < 1:
            raise ConfigError(f"max_calls_per_action must be >= 1, got {self.max_calls_per_action}")
        if self.max_result_chars < 100:
            raise ConfigError(f"max_result_chars must be >= 100, got {self.max_result_chars}")


def default_families() -> list[ToolFamily]:
    """The in-process families of ``selfgym/Tools-v0``: calculator, SQL, files, calendar, shop."""
    from .agenda import CalendarTasks
    from .calculator import CalcTasks
    from .files import FileTasks
    from .shop import ShopTasks
    from .sql import SqlTasks

    return [CalcTasks(), SqlTasks(), FileTasks(), CalendarTasks(), ShopTasks()]


@dataclass(frozen=True)
class _Parsed:
    raw: str
    action: tuple[ToolCall, ...] | FinalAnswer


class ToolEnv(LLMEnv):
    """Solve tasks by calling tools (Python callables with JSON-Schema arguments).

    Observation:
        The task prompt, then the result of each tool call (``name returned: <JSON>``) or a precise
        error: unknown tool, schema violation with the path of the bad field, the tool's exception
        type and message, or a timeout. The last observation is the verifier's message.

    Actions:
        One or more tool calls, ``{"name": "<tool>", "arguments": {...}}`` (a JSON list,
        ``<tool_call>`` blocks, fenced JSON, OpenAI shapes and ``f(a=1)`` syntax are accepted too),
        or a final answer ``<answer>...</answer>``. ``info["tools"]`` lists the tools in the
        OpenAI function-calling format; a malformed action or a call that fails validation runs
        nothing and is reported as ``info["action_error"]``.

    Rewards:
        1 if the verifier accepts the final state and answer, else 0.

    Episode End:
        Terminated by the final answer; truncated after ``max_episode_steps`` (20 at registration).

    Arguments:
        families: the task families (default: ``default_families()``); a task whose family is not
            among them is an ``AnswerFamily`` task (its payload names the answer).
        tools: extra tools offered in every episode.
        mcp_servers: MCP servers (``MCPServerConfig``) to mount; they start at the first reset
            and restart after a crash.
        config: ``ToolEnvConfig`` (timeouts, limits).
        task_source, split, difficulty, render_mode: see ``LLMEnv``.

    Each episode gets a fresh temp dir and state, removed at the next reset or ``close``.

    Version History:
        v0: initial version.
    """

    def __init__(
        self,
        *,
        families: Sequence[ToolFamily] | None = None,
        tools: Sequence[Tool] = (),
        mcp_servers: Sequence[MCPServerConfig] = (),
        config: ToolEnvConfig | None = None,
        task_source: TaskSource | None = None,
        split: Split = "train",
        difficulty: float | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.config = config or ToolEnvConfig()
        chosen = list(families) if families is not None else default_families()
        self.families: dict[str, ToolFamily] = {f.family: f for f in chosen}
        self.extra_tools = tuple(tools)
        self.mcp_servers = {c.name: c for c in mcp_servers}
        self._connections: dict[str, MCPConnection] = {}
        self._runner = ToolRunner()
        self._answer_family = AnswerFamily()
        self._family: ToolFamily | None = None
        self._world: Any = None
        self._context: EpisodeContext | None = None
        self._toolbox: Toolbox | None = None
        self._plan: list[str] | None = None
        self._plan_pos = 0
        super().__init__(task_source=task_source, split=split, difficulty=difficulty, render_mode=render_mode)

    def default_task_source(self) -> TaskSource:
        if not self.families:
            raise ConfigError("ToolEnv needs families= or a task_source= to draw tasks from")
        return MixedTasks(list(self.families.values()), name="tools")

    # ----------------------------------------------------------------- episode
    def setup(self, task: Task) -> str:
        family = self.families.get(task.family) or self._answer_family
        names = family.servers if family is not self._answer_family else tuple(self.mcp_servers)
        servers = {name: self._connection(name) for name in names}
        self._context = EpisodeContext(servers)  # set first: teardown removes its dir even if open fails
        world = family.open(task, self._context)
        self._family, self._world, self._plan, self._plan_pos = family, world, None, 0
        self._toolbox = Toolbox(
            [*family.tools(self._world), *self.extra_tools],
            runner=self._runner,
            default_timeout_s=self.config.tool_timeout_s,
            max_result_chars=self.config.max_result_chars,
        )
        return task.prompt

    def tools(self) -> list[dict[str, Any]]:
        return self._toolbox.specs() if self._toolbox is not None else []

    def instructions(self, task: Task) -> str:
        assert self._toolbox is not None
        listing = "\n".join(f"- {t.signature()}: {t.description}" for t in self._toolbox.tools.values())
        return (
            f"You can call these tools:\n{listing}\n\n"
            'To call a tool, reply with a JSON object {"name": "<tool>", "arguments": {...}}. '
            f"You may make up to {self.config.max_calls_per_action} calls in one reply (a JSON list). "
            "Each result comes back as the next message. "
            "When you are done, reply with <answer>your final answer</answer>."
        )

    def parse_action(self, action: str) -> _Parsed:
        assert self._toolbox is not None
        parsed = parse_tool_action(action, max_calls=self.config.max_calls_per_action)
        if not isinstance(parsed, FinalAnswer):
            for index, call in enumerate(parsed, start=1):
                try:
                    self._toolbox.resolve(call)
                except ActionError as exc:
                    if len(parsed) > 1:  # say which call of several is wrong; none of them ran
                        exc.args = (f"call {index} of {len(parsed)} (none were run): {exc}",)
                    raise
        return _Parsed(action, parsed)

    def env_response(self, parsed: _Parsed) -> StepResult:
        assert self.task is not None and self._family is not None and self._toolbox is not None
        if self._plan is not None and self._plan_pos < len(self._plan) and parsed.raw == self._plan[self._plan_pos]:
            self._plan_pos += 1
        if isinstance(parsed.action, FinalAnswer):
            verdict = self._family.verify(self.task, self._world, parsed.action.text)
            return StepResult(observation=f"Answer received: {verdict.message}", reward=float(verdict.success),
                              terminated=True, success=verdict.success, info={"verdict": verdict.message})
        outcomes = [self._toolbox.run(call) for call in parsed.action]
        info = {"tool_calls": [{"name": o.call.name, "error": o.error, "duration_s": o.duration_s} for o in outcomes]}
        return StepResult(observation=_render(outcomes), info=info)

    def oracle_action(self) -> str:
        assert self.task is not None and self._family is not None
        if self._plan is None:
            self._plan = self._family.plan(self.task, self._world)
        return self._plan[min(self._plan_pos, len(self._plan) - 1)]

    def teardown(self) -> None:
        try:
            if self._family is not None:
                self._family.close(self._world)
        finally:
            if self._context is not None:
                self._context.cleanup()
            self._family, self._world, self._context, self._toolbox = None, None, None, None

    def close(self) -> None:
        try:
            super().close()
        finally:
            for connection in self._connections.values():
                connection.close()
            self._connections.clear()
            self._runner.close()

    # ----------------------------------------------------------------- helpers
    @property
    def world(self) -> Any:
        """The current episode's state (for verifiers, tests and debugging)."""
        return self._world

    def _connection(self, name: str) -> MCPConnection:
        """The running MCP server ``name``, started (or restarted after a crash) as needed."""
        if name not in self.mcp_servers:
            raise ConfigError(f"this env mounts no MCP server named {name!r}; pass mcp_servers=[MCPServerConfig("
                              f"name={name!r}, ...)] (mounted: {sorted(self.mcp_servers) or 'none'})")
        connection = self._connections.get(name)
        if connection is None or not connection.healthy():
            from .mcp_tools import MCPConnection

            if connection is not None:
                connection.close()
            connection = MCPConnection(self.mcp_servers[name])
            connection.start()
            self._connections[name] = connection
        return connection


def _render(outcomes: list[CallOutcome]) -> str:
    lines = []
    for i, outcome in enumerate(outcomes, start=1):
        prefix = f"[{i}] " if len(outcomes) > 1 else ""
        verb = "returned" if outcome.ok else "failed with"
        lines.append(f"{prefix}{outcome.call.name} {verb}: {outcome.text}")
    return "\n".join(lines)


def default_task_source() -> MixedTasks:
    """All in-process families as one task source (registered as ``tools``)."""
    return MixedTasks(default_families(), name="tools")
