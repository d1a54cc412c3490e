"""Reading tool calls and final answers out of an agent's action text.

The canonical action is one JSON object ``{"name": "<tool>", "arguments": {...}}`` (several calls:
a JSON list, or one object per ``<tool_call>`` block), and ``<answer>...</answer>`` ends the
episode. The formats small models commonly emit are accepted too:

* ``<tool_call>{...}</tool_call>`` blocks (Hermes / Qwen), the closing tag optional;
* fenced blocks (```` ```json ... ``` ````);
* OpenAI shapes: ``{"type": "function", "function": {...}}``, ``{"tool_calls": [...]}``, and
  ``arguments`` given as a JSON-encoded string; ``parameters`` / ``args`` / ``input`` for
  ``arguments`` (Llama 3.1 writes ``parameters``);
* Python call syntax with keyword arguments: ``search(query="lamp")`` or ``[f(a=1), g(b=2)]``
  (the Berkeley Function Calling Leaderboard's prompt format);
* a JSON object embedded in prose ("Sure! {...}");
* final answers as ``{"answer": ...}``, a ``final_answer`` call, or a line ``Final answer: ...``.

Anything else raises ``ActionError`` with a message that says what was expected.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any

from selfgym.errors import ActionError

__all__ = ["FinalAnswer", "ToolCall", "answer_text", "call_text", "parse_tool_action"]

FINAL_ANSWER_TOOL = "final_answer"
_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)
_TOOL_CALL_TAG = re.compile(r"<tool_call>(.*?)(?:</tool_call>|(?=<tool_call>)|$)", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```[\w-]*[ \t]*\n?(.*?)```", re.DOTALL)
_ANSWER_LINE = re.compile(r"^\s*(?:final answer|answer)\s*[:=]\s*(.*)", re.IGNORECASE | re.DOTALL | re.MULTILINE)
_NAME_KEYS = ("name", "tool", "tool_name", "function")
_ARG_KEYS = ("arguments", "parameters", "args", "input", "params")
_MAX_SCAN = 16
FORMAT_HINT = 'Call a tool with {"name": "<tool>", "arguments": {...}} or finish with <answer>your answer</answer>.'


@dataclass(frozen=True)
class ToolCall:
    """One call: the tool's name and its keyword arguments."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class FinalAnswer:
    """The agent is done; ``text`` is its answer."""

    text: str


def call_text(name: str, /, **arguments: Any) -> str:
    """The canonical action text for one call (used by oracles and docs)."""
    return json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)


def answer_text(answer: Any) -> str:
    """The canonical action text for a final answer."""
    return f"<answer>{answer}</answer>"


def parse_tool_action(text: str, *, max_calls: int = 8) -> tuple[ToolCall, ...] | FinalAnswer:
    """Read the tool calls (or the final answer) in ``text``; ``ActionError`` if there is neither."""
    stripped = text.strip()
    if not stripped:
        raise ActionError(f"the action is empty. {FORMAT_HINT}")
    parsed = _parse(stripped)
    if parsed is None:
        raise ActionError(f"no tool call or answer found in the action. {FORMAT_HINT}")
    if isinstance(parsed, FinalAnswer):
        return parsed
    if not parsed:
        raise ActionError(f"the action holds an empty list of tool calls. {FORMAT_HINT}")
    if len(parsed) > max_calls:
        raise ActionError(f"the action makes {len(parsed)} tool calls; at most {max_calls} are allowed per turn")
    return tuple(parsed)


def _parse(text: str) -> list[ToolCall] | FinalAnswer | None:
    if text[0] in "{[":
        try:
            return _from_json(_loads(text))
        except json.JSONDecodeError:
            pass
    tagged = _TOOL_CALL_TAG.findall(text)
    answer = _ANSWER_TAG.search(text)
    if answer and tagged:
        raise ActionError("the action has both tool calls and an <answer>; give the answer in a later turn")
    if answer:
        return FinalAnswer(answer.group(1).strip())
    if tagged:
        calls: list[ToolCall] = []
        for i, block in enumerate(tagged, start=1):
            result = _parse_payload(block.strip(), where=f"<tool_call> block {i}")
            if isinstance(result, FinalAnswer):
                raise ActionError(f"<tool_call> block {i} holds an answer; use <answer>...</answer> instead")
            calls.extend(result)
        return calls
    fenced = _FENCE.findall(text)
    if fenced:
        return _parse_payload(fenced[0].strip(), where="the fenced block")
    python = _from_python(text)
    if python is not None:
        return python
    line = _ANSWER_LINE.search(text)
    if line:
        return FinalAnswer(line.group(1).strip())
    return _scan_embedded(text)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise ActionError("the JSON in the action is nested too deeply") from None


def _parse_payload(payload: str, *, where: str) -> list[ToolCall] | FinalAnswer:
    if not payload:
        raise ActionError(f"{where} is empty. {FORMAT_HINT}")
    try:
        return _from_json(_loads(payload))
    except json.JSONDecodeError as exc:
        python = _from_python(payload)
        if python is not None:
            return python
        raise ActionError(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def _scan_embedded(text: str) -> list[ToolCall] | FinalAnswer | None:
    """A JSON call object somewhere inside prose."""
    decoder = json.JSONDecoder()
    start, tries = text.find("{"), 0
    while start != -1 and tries < _MAX_SCAN:
        tries += 1
        try:
            value, _ = decoder.raw_decode(text, start)
        except (json.JSONDecodeError, RecursionError):
            value = None
        if isinstance(value, dict) and (_looks_like_call(value) or "answer" in value):
            return _from_json(value)
        start = text.find("{", start + 1)
    return None


def _looks_like_call(value: dict[str, Any]) -> bool:
    return any(k in value for k in (*_NAME_KEYS, "tool_calls"))


def _from_json(value: Any) -> list[ToolCall] | FinalAnswer:
    if isinstance(value, list):
        calls: list[ToolCall] = []
        for i, item in enumerate(value, start=1):
            result = _from_json(item) if isinstance(item, dict) else None
            if not isinstance(result, list):
                raise ActionError(f"item {i} of the list is not a tool call object. {FORMAT_HINT}")
            calls.extend(result)
        return calls
    if not isinstance(value, dict):
        raise ActionError(f"expected a JSON object, got {type(value).__name__}. {FORMAT_HINT}")
    if "tool_calls" in value:
        return _from_json(value["tool_calls"])
    if isinstance(value.get("function"), dict):
        return _from_json(value["function"])
    if "answer" in value and not _looks_like_call(value):
        return FinalAnswer(_as_text(value["answer"]))
    call = _call_from_object(value)
    if call.name == FINAL_ANSWER_TOOL:
        args = call.arguments
        return FinalAnswer(_as_text(args.get("answer", args.get("text", next(iter(args.values()), "")))))
    return [call]


def _call_from_object(value: dict[str, Any]) -> ToolCall:
    name = next((value[k] for k in _NAME_KEYS if k in value), None)
    if not isinstance(name, str) or not name.strip():
        raise ActionError(f'a tool call needs a string "name"; got keys {sorted(value)[:8]}. {FORMAT_HINT}')
    arguments: Any = next((value[k] for k in _ARG_KEYS if k in value), {})
    if isinstance(arguments, str):
        try:
            arguments = _loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise ActionError(f"the arguments of {name!r} are a string that is not valid JSON: {exc.msg}") from None
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise ActionError(f"the arguments of {name!r} must be a JSON object, got {type(arguments).__name__}")
    return ToolCall(name.strip(), arguments)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


_LITERAL_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


def _from_python(text: str) -> list[ToolCall] | None:
    """``f(a=1)`` or ``[f(a=1), g.h(b="x")]``; None if ``text`` is not such an expression."""
    if "(" not in text or len(text) > 20_000:
        return None
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # MemoryError: parser nesting limit
        return None
    nodes = tree.elts if isinstance(tree, ast.List | ast.Tuple) else [tree]
    if not nodes or not all(isinstance(n, ast.Call) for n in nodes):
        return None
    return [_call_from_ast(n) for n in nodes]  # type: ignore[arg-type]


def _call_from_ast(node: ast.Call) -> ToolCall:
    name = _dotted_name(node.func)
    if name is None:
        raise ActionError("a call in Python syntax needs a plain function name, like search(query='x')")
    if node.args:
        raise ActionError(f"{name}(...): pass arguments by keyword, like {name}(query='x')")
    arguments: dict[str, Any] = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            raise ActionError(f"{name}(...): **kwargs is not allowed; name each argument")
        arguments[keyword.arg] = _literal(keyword.value, name, keyword.arg)
    return ToolCall(name, arguments)


def _dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted_name(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _literal(node: ast.expr, name: str, arg: str) -> Any:
    if isinstance(node, ast.Name) and node.id in _LITERAL_NAMES:
        return _LITERAL_NAMES[node.id]
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(e, name, arg) for e in node.elts]
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise ActionError(f"{name}({arg}=...): ** inside a dict is not allowed")
        keys = [_literal(k, name, arg) for k in node.keys]  # type: ignore[arg-type]
        if not all(isinstance(k, str) for k in keys):
            raise ActionError(f"{name}({arg}=...): dict keys must be strings")
        return dict(zip(keys, (_literal(v, name, arg) for v in node.values), strict=True))
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ActionError(f"{name}({arg}=...): the value must be a literal (number, string, list, dict)") from None
