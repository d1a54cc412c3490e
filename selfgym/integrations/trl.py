"""selfgym envs inside TRL's ``GRPOTrainer``: ``environment_factory`` classes, the task dataset, the template.

TRL's contract (``trl.trainer.grpo_trainer.EnvironmentFactory``): a no-argument callable returning
an object with ``reset(**row) -> str | None`` (called with the dataset row's columns; a string is
appended to the prompt), one public method per tool (name, type hints and Google docstring become
the tool's schema) and ``get_reward() -> float`` (called once when the rollout ends).

``environment_factory(env_id)`` builds such a class for any selfgym env: an env with JSON-schema
tools (``Tools-v0``) gets one method per tool plus ``answer(answer)`` for the final answer; a
text-action env (``Code-v0``) gets one tool, ``submit(code)`` there, that sends the argument as
the action. Every tool call is one ``env.step``; its observation is the tool's return value, and
``get_reward`` is the episode's total reward, selfgym's verdict.

TRL needs a chat template that renders tool calls; SmolLM2's does not, so
``tool_calling_tokenizer`` gives a ChatML tokenizer the Hermes-style template shipped here
(``templates/smollm2_tools.jinja``) and the matching response parser.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar

import datasets

import selfgym
from selfgym.envs.base import llm_env
from selfgym.errors import ConfigError
from selfgym.types import Split, Task

__all__ = [
    "SelfgymEnvironment",
    "TextTool",
    "chat_template",
    "environment_factory",
    "resolve_tasks",
    "task_dataset",
    "tool_calling_tokenizer",
]

_JSON_TYPES: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool,
                                "array": list, "object": dict}
ENDED = "The episode has ended; reply without calling a tool."


@dataclass(frozen=True, kw_only=True)
class TextTool:
    """The tool that sends its one argument as the action (``template`` formats it)."""

    name: str = "submit"
    argument: str = "action"
    description: str = "Send your reply to the environment. Returns its feedback."
    template: str = "{}"


#: The text tool of envs whose action is one piece of text; other text envs get ``TextTool()``.
TEXT_TOOLS: dict[str, TextTool] = {
    "selfgym/Code-v0": TextTool(name="submit", argument="code",
                                description="Submit the complete Python solution. Returns the test feedback."),
}
ANSWER_TOOL = TextTool(name="answer", argument="answer", template="<answer>{}</answer>",
                       description="Give your final answer; this ends the episode. Returns the verdict.")


class SelfgymEnvironment:
    """One selfgym env behind TRL's environment contract (subclassed per env by ``environment_factory``).

    Attributes:
        total_reward: the reward collected so far in this episode (``get_reward``).
        success: the env's verdict (``info["success"]`` of the last step).
        turns: env steps taken in this episode.
        done: whether the episode has ended (terminated or truncated).
    """

    env_id: ClassVar[str] = ""
    env_kwargs: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        self.env = selfgym.make(self.env_id, **self.env_kwargs)
        self.task: Task | None = None
        self.total_reward, self.success, self.turns, self.done = 0.0, False, 0, True

    def reset(self, **row: Any) -> str | None:
        """Start the episode of the row's ``task_id`` (a sampled task without one; ``seed`` if given).

        Returns the first observation, or None when the row's prompt already holds it.
        """
        task_id = row.get("task_id")
        observation, info = self.env.reset(seed=row.get("seed"), options={"task": task_id} if task_id else None)
        self.task = info["task"]
        self.total_reward, self.success, self.turns, self.done = 0.0, False, 0, False
        prompt = row.get("prompt")
        shown = prompt[-1]["content"] if isinstance(prompt, list) and prompt else prompt
        return None if isinstance(shown, str) and observation in shown else observation

    def get_reward(self) -> float:
        """The episode's total reward (selfgym's verdict)."""
        return self.total_reward

    def _act(self, action: str) -> str:
        if self.done:
            return ENDED
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.total_reward += float(reward)
        self.success = bool(info.get("success"))
        self.turns += 1
        self.done = terminated or truncated
        return observation


def _doc(description: str, arguments: dict[str, str]) -> str:
    flat = " ".join(description.split()) or "A tool."
    lines = [flat, "", "Args:"] + [f"    {name}: {' '.join(text.split()) or name}" for name, text in arguments.items()]
    return "\n".join([*lines, "", "Returns:", "    The environment's reply."])


def _text_method(tool: TextTool) -> Callable[..., str]:
    def method(self: SelfgymEnvironment, **arguments: Any) -> str:
        return self._act(tool.template.format(arguments[tool.argument]))

    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    param = inspect.Parameter(tool.argument, inspect.Parameter.KEYWORD_ONLY, annotation=str)
    method.__signature__ = inspect.Signature([self_param, param], return_annotation=str)  # type: ignore[attr-defined]
    method.__annotations__ = {tool.argument: str, "return": str}
    method.__name__ = method.__qualname__ = tool.name
    method.__doc__ = _doc(tool.description, {tool.argument: "the text sent to the environment"})
    return method


def _tool_method(spec: dict[str, Any]) -> Callable[..., str]:
    """A method with the tool's signature that calls it through one env step."""
    function = spec.get("function", spec)
    name = function["name"]
    schema = function.get("parameters") or {}
    required = set(schema.get("required", ()))

    def method(self: SelfgymEnvironment, **arguments: Any) -> str:
        given = {k: v for k, v in arguments.items() if v is not None}
        return self._act(json.dumps({"name": name, "arguments": given}))

    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    described: dict[str, str] = {}
    for arg, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type")
        hint: Any = _JSON_TYPES.get(kind, str) if isinstance(kind, str) else str
        if arg not in required:
            hint = hint | None
        annotations[arg] = hint
        text = str(prop.get("description") or arg)
        if "enum" in prop:
            text += f" (choices: {json.dumps(prop['enum'])})"
        described[arg] = text
        params.append(inspect.Parameter(arg, inspect.Parameter.KEYWORD_ONLY, annotation=hint,
                                        default=inspect.Parameter.empty if arg in required else None))
    method.__signature__ = inspect.Signature(params, return_annotation=str)  # type: ignore[attr-defined]
    method.__annotations__ = {**annotations, "return": str}
    method.__name__ = method.__qualname__ = name
    method.__doc__ = _doc(str(function.get("description", "")), described)
    return method


def resolve_tasks(env_id: str, tasks: Sequence[Task | str] | int, *, split: Split = "train",
                  env_kwargs: dict[str, Any] | None = None) -> list[Task]:
    """Tasks by id, or the first ``tasks`` tasks of ``split`` of the env's task source."""
    env = selfgym.make(env_id, **(env_kwargs or {}))
    try:
        source = llm_env(env).task_source
        if isinstance(tasks, int):
            return list(source.tasks(split, limit=tasks))
        return [t if isinstance(t, Task) else source.get(t) for t in tasks]
    finally:
        env.close()


def environment_factory(env_id: str, *, tasks: Sequence[Task | str] = (), text_tool: TextTool | None = None,
                        **env_kwargs: Any) -> type[SelfgymEnvironment]:
    """A ``SelfgymEnvironment`` class for ``env_id``, to pass as ``GRPOTrainer(environment_factory=...)``.

    Args:
        env_id: a registered selfgym env (``selfgym/Tools-v0``).
        tasks: tasks whose tools are offered (the union over them; the env's tools differ per task
            family). Default: the tools of one sampled task.
        text_tool: the tool of a text-action env (default: ``TEXT_TOOLS[env_id]`` or ``TextTool()``).
        env_kwargs: passed to ``selfgym.make``.
    """
    env_id = selfgym.registry.resolve_env_id(env_id)
    probe = selfgym.make(env_id, **env_kwargs)
    specs: dict[str, dict[str, Any]] = {}
    try:
        chosen: list[Task | str | None] = [*tasks] or [None]
        for task in chosen:
            _, info = probe.reset(seed=0, options={"task": task} if task is not None else None)
            for spec in info.get("tools") or ():
                specs.setdefault(spec.get("function", spec)["name"], spec)
    finally:
        probe.close()
    methods: dict[str, Any] = {name: _tool_method(spec) for name, spec in specs.items()}
    extra = ANSWER_TOOL if specs else (text_tool or TEXT_TOOLS.get(env_id, TextTool()))
    methods[extra.name] = _text_method(extra)
    taken = set(dir(SelfgymEnvironment))
    clash = sorted(n for n in methods if n in taken or not n.isidentifier())
    if clash:
        raise ConfigError(f"{env_id}: tool names {clash} clash with the adapter's own names or are not identifiers; "
                          "rename the tools")
    name = re.sub(r"\W", "", env_id.split("/")[-1].replace("-", "_")) + "Environment"
    doc = f"The selfgym env {env_id} as a TRL environment (tools: {', '.join(methods)})."
    return type(name, (SelfgymEnvironment,), {"env_id": env_id, "env_kwargs": dict(env_kwargs), "__doc__": doc,
                                              "__module__": __name__, **methods})


def task_dataset(env_id: str, tasks: Sequence[Task | str] | int, *, split: Split = "train",
                 env_kwargs: dict[str, Any] | None = None) -> datasets.Dataset:
    """Rows TRL's ``GRPOTrainer`` takes: ``prompt`` (one user message, the task prompt) and ``task_id``."""
    chosen = resolve_tasks(env_id, tasks, split=split, env_kwargs=env_kwargs)
    return datasets.Dataset.from_list([
        {"prompt": [{"role": "user", "content": task.prompt}], "task_id": task.id} for task in chosen
    ])


def chat_template() -> str:
    """The tool-calling ChatML template for the embedded SmolLM2 (Hermes-style ``<tool_call>`` JSON)."""
    return resources.files(__package__).joinpath("templates/smollm2_tools.jinja").read_text(encoding="utf-8")


def tool_calling_tokenizer(tokenizer: Any) -> Any:
    """``tokenizer`` able to run TRL's tool loop: a tool-calling template and a response parser.

    A ChatML tokenizer (``<|im_start|>``, as SmolLM2's) whose template cannot render tool calls gets
    ``chat_template()``; the parser reads the ``<tool_call>`` blocks that template asks for.

    Raises:
        ConfigError: the template cannot render tool calls and the tokenizer is not ChatML.
    """
    from trl.chat_template_utils import qwen3_template, supports_tool_calling

    if not supports_tool_calling(tokenizer):
        if "<|im_start|>" not in tokenizer.get_vocab():
            raise ConfigError("the tokenizer's chat template cannot render tool calls and it is not a ChatML "
                              "tokenizer; set tokenizer.chat_template to a tool-calling template of your model")
        tokenizer.chat_template = chat_template()
        tokenizer.response_template = qwen3_template
    elif getattr(tokenizer, "response_template", None) is None and getattr(tokenizer, "response_schema", None) is None:
        from trl.chat_template_utils import add_response_schema

        add_response_schema(tokenizer)
    return tokenizer
