"""Tools as Python callables described by JSON Schema, and the ``@tool`` decorator.

``@tool`` reads a function's type hints and its Google-style docstring and builds the
OpenAI function-calling description::

    @tool
    def convert(value: float, unit: Literal["km", "mi"] = "km") -> float:
        \"\"\"Convert a distance.

        Args:
            value: the distance to convert.
            unit: the unit ``value`` is in.
        \"\"\"

Supported annotations: ``str``, ``int``, ``float``, ``bool``, ``list[T]``, ``dict[str, T]``,
``Literal[...]``, ``X | None`` and ``Annotated[T, "description" or {extra schema}]``. Anything else
raises ``TypeError`` when the tool is defined. A method decorated with ``@tool`` becomes a tool
bound to its instance when read from it (``shop.search``); nothing is discovered implicitly.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from selfgym.errors import ActionError

__all__ = ["ArgumentError", "Tool", "parse_docstring", "schema_for", "tool"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
}
_SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Yields|Raises|Examples?|Notes?|Attributes):\s*$")
_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_MAX_ERRORS_SHOWN = 3


class ArgumentError(ActionError):
    """The arguments of a tool call do not match the tool's JSON Schema."""


@dataclass(frozen=True, kw_only=True)
class Tool:
    """One tool: a callable with a name, a description and a JSON Schema for its arguments.

    Calling a ``Tool`` calls the function with keyword arguments. ``timeout_s`` overrides the
    env's per-call timeout for this tool (``None``: use the env's).
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    timeout_s: float | None = None
    method: bool = False  # defined in a class body: bound to the instance it is read from
    _validator: Draft202012Validator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"tool name {self.name!r} must match {_NAME.pattern} (the OpenAI function-name rule)")
        if self.parameters.get("type") != "object":
            raise ValueError(f"tool {self.name!r}: parameters must be a JSON Schema of type 'object'")
        object.__setattr__(self, "_validator", _validator(json.dumps(self.parameters, sort_keys=True)))

    def __call__(self, **arguments: Any) -> Any:
        return self.fn(**arguments)

    def __get__(self, instance: Any, owner: type | None = None) -> Tool:
        if instance is None or not self.method:
            return self
        return dataclasses.replace(self, fn=types.MethodType(self.fn, instance), method=False)

    def spec(self) -> dict[str, Any]:
        """The description in the OpenAI function-calling format."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def signature(self) -> str:
        """A one-line human-readable signature, e.g. ``convert(value: number, unit?: "km" | "mi")``."""
        props = self.parameters.get("properties", {})
        required = set(self.parameters.get("required", []))
        args = [f"{name}{'' if name in required else '?'}: {_type_label(s)}" for name, s in props.items()]
        return f"{self.name}({', '.join(args)})"

    def check_arguments(self, arguments: Any) -> None:
        """Raise ``ArgumentError`` naming the path of each bad field if ``arguments`` break the schema."""
        errors = sorted(self._validator.iter_errors(arguments), key=lambda e: (len(e.path), list(map(str, e.path))))
        if not errors:
            return
        shown = "; ".join(f"at {e.json_path}: {e.message}" for e in errors[:_MAX_ERRORS_SHOWN])
        more = f" (and {len(errors) - _MAX_ERRORS_SHOWN} more)" if len(errors) > _MAX_ERRORS_SHOWN else ""
        raise ArgumentError(f"invalid arguments for {self.name}: {shown}{more}. Expected {self.signature()}")


@functools.lru_cache(maxsize=1024)
def _validator(schema_json: str) -> Draft202012Validator:
    schema = json.loads(schema_json)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"not a valid JSON Schema: {exc.message}") from exc
    return Draft202012Validator(schema)


def _type_label(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " | ".join(_type_label(s) for s in schema["anyOf"])
    kind = schema.get("type", "any")
    if kind == "array" and "items" in schema:
        return f"array of {_type_label(schema['items'])}"
    return kind if isinstance(kind, str) else " | ".join(kind)


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
) -> Any:
    """Make a ``Tool`` of ``fn``, its JSON Schema derived from type hints and docstring.

    Use as ``@tool``, ``@tool(name=..., timeout_s=...)`` or ``tool(some_function)``.

    Args:
        fn: the function (or method) to wrap.
        name: the tool name (default: the function's name).
        description: overrides the docstring's summary.
        timeout_s: per-call timeout for this tool (default: the env's).
    """

    def wrap(func: Callable[..., Any]) -> Tool:
        derived_description, parameters, is_method = _derive(func)
        return Tool(
            name=name or func.__name__,
            description=description or derived_description,
            parameters=parameters,
            fn=func,
            timeout_s=timeout_s,
            method=is_method,
        )

    return wrap(fn) if fn is not None else wrap


def _derive(func: Callable[..., Any]) -> tuple[str, dict[str, Any], bool]:
    """``(description, parameters schema, is_method)`` for ``func``."""
    target = func.__func__ if inspect.ismethod(func) else func
    summary, arg_docs = parse_docstring(inspect.getdoc(target) or "")
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except NameError as exc:
        raise TypeError(f"tool {func.__name__}: cannot resolve a type hint ({exc})") from exc
    params = list(inspect.signature(target).parameters.values())
    is_method = bool(params) and params[0].name == "self" and not inspect.ismethod(func)
    if params and (is_method or inspect.ismethod(func)) and params[0].name in ("self", "cls"):
        params = params[1:]
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise TypeError(f"tool {func.__name__}: parameter {param.name!r} must be a plain keyword-capable parameter")
        if param.name not in hints:
            raise TypeError(f"tool {func.__name__}: annotate parameter {param.name!r} (its type becomes the schema)")
        try:
            schema = schema_for(hints[param.name])
        except TypeError as exc:
            raise TypeError(f"tool {func.__name__}: parameter {param.name!r}: {exc}") from exc
        if param.name in arg_docs and "description" not in schema:
            schema = {**schema, "description": arg_docs[param.name]}
        if param.default is param.empty:
            required.append(param.name)
        elif _is_json(param.default):
            schema = {**schema, "default": param.default}
        properties[param.name] = schema
    parameters = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    return summary or func.__name__.replace("_", " "), parameters, is_method


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def schema_for(annotation: Any) -> dict[str, Any]:
    """The JSON Schema for one type annotation (``TypeError`` for unsupported ones)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is None and annotation in _SCALARS:
        return dict(_SCALARS[annotation])
    if annotation is Any:
        return {}
    if origin is Annotated:
        schema = schema_for(args[0])
        for extra in args[1:]:
            if isinstance(extra, str):
                schema["description"] = extra
            elif isinstance(extra, Mapping):
                schema.update(extra)
        return schema
    if origin is Literal:
        kinds = {type(v) for v in args}
        schema = {"enum": list(args)}
        if len(kinds) == 1 and next(iter(kinds)) in _SCALARS:  # a bool is not an int here: type() is exact
            schema["type"] = _SCALARS[next(iter(kinds))]["type"]
        return schema
    if origin in (Union, types.UnionType):
        options = [schema_for(a) for a in args]
        return options[0] if len(options) == 1 else {"anyOf": options}
    if annotation is list or origin in (list, Sequence):
        return {"type": "array", "items": schema_for(args[0])} if args else {"type": "array"}
    if annotation is dict or origin in (dict, Mapping):
        if args and args[0] is not str:
            raise TypeError(f"JSON object keys are strings; got dict[{args[0]!r}, ...]")
        return {"type": "object", "additionalProperties": schema_for(args[1])} if args else {"type": "object"}
    raise TypeError(
        f"unsupported annotation {annotation!r}; use str, int, float, bool, list[...], dict[str, ...], "
        "Literal[...], X | None or Annotated[...]"
    )


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """``(summary, {argument: description})`` from a Google-style docstring.

    The summary is the text before the first section (``Args:``, ``Returns:``, ...); a
    ``Returns:`` section is appended to it, since it tells an agent what the tool gives back.
    """
    summary_lines: list[str] = []
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in doc.splitlines():
        header = _SECTION.match(line.strip()) if not line.startswith((" ", "\t")) else None
        if header:
            current = sections.setdefault(header.group(1), [])
        elif current is None:
            summary_lines.append(line.strip())
        else:
            current.append(line)
    summary = " ".join(" ".join(summary_lines).split())
    returns = " ".join(" ".join(sections.get("Returns", [])).split())
    if returns:
        summary = f"{summary} Returns: {returns}".strip()
    args_lines = sections.get("Args") or sections.get("Arguments") or sections.get("Parameters") or []
    return summary, _parse_args(args_lines)


def _parse_args(lines: list[str]) -> dict[str, str]:
    docs: dict[str, str] = {}
    indent: int | None = None
    last: str | None = None
    for raw in lines:
        if not raw.strip():
            continue
        level = len(raw) - len(raw.lstrip())
        match = _ARG_LINE.match(raw.strip())
        if match and (indent is None or level <= indent):
            indent, last = level, match.group(1).lstrip("*")
            docs[last] = match.group(3).strip()
        elif last is not None:
            docs[last] = f"{docs[last]} {raw.strip()}".strip()
    return docs
