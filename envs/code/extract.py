"""Find the program in a model's reply: fenced blocks, raw code, bodies, tool calls.

Small models wrap code in prose, forget to close a fence, put a test snippet in a second block,
continue a function body without its ``def`` line, or leave chat-template tokens behind. The rules,
in order:

1. Chat-template tokens (``<|im_end|>``) and reasoning (``<think>...</think>``) are dropped.
2. Fenced blocks (```` ``` ```` or ``~~~``, tagged python/py/untagged; an unclosed last fence runs to
   the end): the last block that defines the entry point wins; helper definitions it uses from
   other blocks are put in front of it. With no such block, the longest block is taken.
3. No fence: the reply itself if it parses as a program; else the span from the first
   ``def``/``class``/``import`` line, with trailing prose cut until it parses.
4. A bare indented body (a HumanEval-style continuation) is appended to the task's stub.
5. Top-level demo code around the function (``print(f(2))``, asserts) is dropped, as sanitisers
   for HumanEval-style evaluation do: only imports, definitions and assignments stay.

Nothing that looks like code raises ``ActionError`` (the env shows it to the agent).
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
from dataclasses import dataclass
from typing import Any

from selfgym.errors import ActionError

__all__ = ["NO_CODE_MESSAGE", "extract_code", "parse_tool_call"]

NO_CODE_MESSAGE = "no Python code found in your reply; put the complete function in a ```python code block"
_SPECIAL_TOKENS = re.compile(r"<\|[^|>]{1,40}\|>|<｜[^｜]{1,40}｜>|</s>|<eos>|<end_of_turn>|<start_of_turn>\w*")
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_FENCE_OPEN = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([^\n`]*)\n", re.MULTILINE)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3", "ipython", "pycon", "python2", "sage"}
_CODE_START = re.compile(r"^[ \t]*(?:async\s+def\s|def\s|class\s|import\s|from\s+[\w.]+\s+import\s|@\w)", re.MULTILINE)
_TOOL_TAG = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_REPL = re.compile(r"^(?:>>> |\.\.\. |>>>$|\.\.\.$)")


@dataclass(frozen=True)
class _Block:
    lang: str
    body: str


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SPECIAL_TOKENS.sub("", text)
    text = _THINK.sub("", text)
    return text.replace("<think>", "").replace("</think>", "")


def _fenced_blocks(text: str) -> list[_Block]:
    blocks, pos = [], 0
    while (match := _FENCE_OPEN.search(text, pos)) is not None:
        fence, info = match.group(1), match.group(2).strip()
        close = text.find(fence, match.end())
        body = text[match.end():] if close == -1 else text[match.end():close]
        pos = len(text) if close == -1 else close + len(fence)
        lang = info.split()[0].lower() if info else ""
        if lang and not re.fullmatch(r"[\w+#.-]+", lang):  # ```def f(): ... : code on the fence line
            body, lang = info + "\n" + body, ""
        blocks.append(_Block(lang, body))
    return blocks


def _parses(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError):
        return None


def _defines(tree: ast.Module | None, code: str, name: str) -> bool:
    if tree is None:
        return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == name:
            return True
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
            return True  # ``from skills import name`` binds it too
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return True
    return False


def _looks_like_code(tree: ast.Module) -> bool:
    """A parsed reply is code if some statement is more than a bare name or constant ("hello")."""
    for node in tree.body:
        if not isinstance(node, ast.Expr) or isinstance(node.value, ast.Call | ast.Await | ast.Yield):
            return True
    return False


def _normalise(code: str) -> str:
    lines = code.split("\n")
    first = next((line for line in lines if line.strip()), "")
    if first.startswith(">>>"):  # a doctest-style session: keep the input lines only
        lines = [line[4:] for line in lines if _REPL.match(line)]
    code = textwrap.dedent("\n".join(line.rstrip() for line in lines)).strip("\n")
    return code + "\n" if code else ""


def _top_level_names(tree: ast.Module) -> dict[str, ast.stmt]:
    names: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = node
    return names


def _with_missing_helpers(code: str, others: list[str]) -> str:
    """Put definitions from ``others`` in front of ``code`` when ``code`` uses but lacks them."""
    tree = _parses(code)
    if tree is None:
        return code
    defined = set(_top_level_names(tree))
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    missing, helpers = used - defined, []
    for other in others:
        other_tree = _parses(other)
        if other_tree is None:
            continue
        for name, node in _top_level_names(other_tree).items():
            if name in missing:
                segment = ast.get_source_segment(other, node)
                if segment and segment not in helpers:
                    helpers.append(segment)
                missing.discard(name)
    return "\n\n".join([*helpers, code]) if helpers else code


def _from_blocks(blocks: list[_Block], entry_point: str | None) -> str:
    python = [b for b in blocks if b.lang in _PYTHON_TAGS] or blocks
    bodies = [_normalise(b.body) for b in python]
    bodies = [b for b in bodies if b.strip()]
    if not bodies:
        raise ActionError("your code block is empty; put the complete function inside it")
    if entry_point:
        defining = [i for i, body in enumerate(bodies) if _defines(_parses(body), body, entry_point)]
        if defining:
            chosen = defining[-1]
            return _with_missing_helpers(bodies[chosen], [b for i, b in enumerate(bodies) if i != chosen])
    return max(bodies, key=len)


def _from_raw(text: str) -> str | None:
    whole = _normalise(text)
    tree = _parses(whole)
    if whole.strip() and tree is not None and _looks_like_code(tree):
        return whole
    match = _CODE_START.search(text)
    if match is None:
        return None
    lines = text[match.start():].split("\n")
    for end in range(len(lines), 0, -1):  # cut trailing prose until the rest parses
        candidate = _normalise("\n".join(lines[:end]))
        if candidate.strip() and _parses(candidate) is not None:
            return candidate
    return _normalise("\n".join(lines))  # unparseable: the agent will see the syntax error


def _complete_stub(code: str, entry_point: str | None, stub: str | None) -> str:
    """A reply that is only the function's body, continued after the task's stub."""
    if not stub or not entry_point or _defines(_parses(code), code, entry_point):
        return code
    raw = code if code.startswith((" ", "\t")) else textwrap.indent(code, "    ")
    joined = stub.rstrip("\n") + "\n" + raw
    tree = _parses(joined)
    return joined if tree is not None and _defines(tree, joined, entry_point) else code


_KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)


def _without_usage(code: str, entry_point: str | None) -> str:
    """Drop top-level demo code (``print(f(1))``, asserts, loops) around the function's definition.

    Small models append example calls that may crash at import and sink a correct function. Only
    imports, definitions and assignments are kept, and only when the code defines ``entry_point``.
    """
    tree = _parses(code)
    if not entry_point or tree is None or not _defines(tree, code, entry_point):
        return code
    lines = code.split("\n")
    kept = []
    for node in tree.body:
        if isinstance(node, _KEPT):
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            kept.append("\n".join(lines[start - 1:node.end_lineno]))
    return "\n\n".join(kept) + "\n" if len(kept) < len(tree.body) else code


def extract_code(text: str, *, entry_point: str | None = None, stub: str | None = None) -> str:
    """The program in ``text``; ``ActionError`` if there is none.

    Args:
        text: the model's reply.
        entry_point: the function the task asks for (picks among several blocks).
        stub: the task's code prompt (signature + docstring); a reply that is only an indented body
            is appended to it.
    """
    cleaned = _clean(text)
    blocks = _fenced_blocks(cleaned)
    code: str | None
    if blocks:
        code = _from_blocks(blocks, entry_point)
    else:
        body = cleaned.strip("\n")
        if stub and body.startswith((" ", "\t")):
            completed = _complete_stub(body, entry_point, stub)
            if completed != body:
                return _normalise(completed)
        code = _from_raw(cleaned)
        if code is None:
            raise ActionError(NO_CODE_MESSAGE)
    return _normalise(_without_usage(_complete_stub(code, entry_point, stub), entry_point))


def parse_tool_call(text: str) -> tuple[str, dict[str, Any]] | None:
    """``(name, arguments)`` if ``text`` is a tool call, else ``None``.

    Accepted: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, a reply that is only such
    a JSON object (optionally in a ```json fence), and the OpenAI ``{"function": {...}}`` shape.
    Raises ``ActionError`` for a tool call whose JSON is broken.
    """
    cleaned = _clean(text).strip()
    tagged = _TOOL_TAG.search(cleaned)
    if tagged:
        payload = tagged.group(1)
    else:
        fenced = re.fullmatch(r"```(?:json)?\s*\n?(.*?)\n?```", cleaned, re.DOTALL)
        payload = fenced.group(1).strip() if fenced else cleaned
        if not (payload.startswith("{") and payload.endswith("}") and '"name"' in payload):
            return None
    try:
        call = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise ActionError(f"your tool call is not valid JSON ({exc.msg} at position {exc.pos})") from exc
    if isinstance(call, dict) and isinstance(call.get("function"), dict):
        call = call["function"]
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        raise ActionError('a tool call is a JSON object {"name": "<tool>", "arguments": {...}}')
    arguments = call.get("arguments", call.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            raise ActionError(f"the tool call's arguments are not valid JSON ({exc.msg})") from exc
    if not isinstance(arguments, dict):
        raise ActionError("the tool call's arguments must be a JSON object")
    return call["name"], arguments
