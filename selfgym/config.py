"""TOML configs mapped onto frozen dataclasses.

``from_dict(cls, data)`` builds a (nested) config dataclass from plain data: an unknown key is a
``ConfigError`` that names the key and lists the known ones, a value of the wrong type names the
key and the expected type. Each field documents itself once, in ``field(metadata={"help": ...})``;
``describe(cls)`` prints that help (``selfgym train --help-config``).
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from selfgym.errors import ConfigError

__all__ = ["describe", "from_dict", "load_toml", "to_dict"]

T = TypeVar("T")


def load_toml(path: str | Path, cls: type[T]) -> T:
    """Read a TOML file into ``cls``."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    return from_dict(cls, data, where=path.name)


def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "config") -> T:
    """Build the dataclass ``cls`` from ``data``; nested dataclass fields take nested tables."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}; known keys: {', '.join(sorted(fields))}")
        kwargs[key] = _convert(hints[key], value, f"{where}.{key}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where=where)  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a {_name(hint)}")
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{where}: {value!r} is not one of {typing.get_args(hint)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        items = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(hint, type) and not isinstance(value, hint) or (hint in (int, float) and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {_name(hint)}, got {value!r}")
    return value


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def to_dict(config: Any) -> dict[str, Any]:
    """The config as plain data (round-trips through ``from_dict``)."""
    return dataclasses.asdict(config)


def describe(cls: type, prefix: str = "", defaults: Any = None) -> list[str]:
    """``key = default  # help`` lines for every field, nested sections included.

    ``defaults`` is the instance whose values are shown (a section's default comes from the field
    that holds it, e.g. ``RunConfig.reflections`` may differ from ``ReflectionConfig()``).
    """
    lines = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        if defaults is not None:
            default = getattr(defaults, f.name)
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "(required)"
        if dataclasses.is_dataclass(hints[f.name]):
            lines.append(f"[{name}]  # {f.metadata.get('help', '')}")
            lines.extend(describe(hints[f.name], prefix=f"{name}.", defaults=default))
            continue
        lines.append(f"{name} = {default!r}  # {f.metadata.get('help', '')}")
    return lines
