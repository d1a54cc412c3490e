"""Text actions for the web env: parsing (pure) and execution on a Playwright page (async).

The action language is a single Python-style call::

    click(12)   fill(12, "text")   select(12, "option")   press(12, "Enter")   press("Tab")
    scroll(down)   scroll("up")   goto("/shop/#/cart")   answer("42")

Text around the call (reasoning, a code fence) is allowed; more than one call is not.
A malformed action raises ``ActionError`` whose message says what to write instead.
"""

from __future__ import annotations

import ast
import dataclasses
import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

from selfgym.errors import ActionError

from .axtree import AXTree
from .confine import SiteOrigins

__all__ = ["ACTION_HELP", "ActionName", "WebAction", "is_allowed_url", "parse_action", "resolve", "resolve_url"]

ActionName = Literal["click", "fill", "select", "press", "scroll", "goto", "answer"]
ACTION_NAMES: tuple[str, ...] = ("click", "fill", "select", "press", "scroll", "goto", "answer")
ACTION_HELP = """\
Act with exactly one call per turn, using the [id] numbers of the page tree:
  click(id)               click a button, link, checkbox, radio, tab, ...
  fill(id, "text")        replace the content of a text field
  select(id, "option")    choose an option of a drop-down by its label
  press(id, "Enter")      press a key in an element (press("Tab") presses it on the page)
  scroll(up) / scroll(down)
  goto("/path")           open a page of this task's site
  answer("text")          give your final answer; this ends the episode"""

_SIGNATURES = {
    "click": "click(id)",
    "fill": 'fill(id, "text")',
    "select": 'select(id, "option")',
    "press": 'press(id, "Key") or press("Key")',
    "scroll": "scroll(up) or scroll(down)",
    "goto": 'goto("/path")',
    "answer": 'answer("text")',
}
_CALL_START = re.compile(r"\b(" + "|".join(ACTION_NAMES) + r")\s*\(")
_ANY_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


@dataclass(frozen=True)
class WebAction:
    """A parsed action: ``name``, the target ``element`` id, and its text argument."""

    name: ActionName
    element: int | None = None
    text: str | None = None

    def __str__(self) -> str:
        args = [str(self.element)] if self.element is not None else []
        if self.text is not None:
            args.append(self.text if self.name == "scroll" else _quote(self.text))
        return f"{self.name}({', '.join(args)})"


def parse_action(text: str) -> WebAction:
    """Parse the one action call in ``text``; ``ActionError`` names what is wrong."""
    calls = []
    pos = 0
    while (match := _CALL_START.search(text, pos)) is not None:
        call, end = _parse_call_at(text, match.start())
        calls.append(call)
        pos = end
    if not calls:
        other = _ANY_CALL.search(text)
        found = f"unknown action {other[1]!r}; " if other else "no action found; "
        raise ActionError(found + "write one of: " + ", ".join(_SIGNATURES.values()))
    if len(calls) > 1:
        names = ", ".join(c.func.id for c in calls)  # type: ignore[attr-defined]
        raise ActionError(f"found {len(calls)} actions ({names}); send exactly one action per turn")
    return _build(calls[0])


def _parse_call_at(text: str, start: int) -> tuple[ast.Call, int]:
    """The shortest ``name(...)`` starting at ``start`` that parses as one Python call."""
    end = text.find(")", start)
    while end != -1:
        snippet = text[start : end + 1]
        try:
            node = ast.parse(snippet, mode="eval").body
        except SyntaxError:
            end = text.find(")", end + 1)
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return node, end + 1
        break
    name = _CALL_START.match(text, start)[1]  # type: ignore[index]
    snippet = text[start : start + 80].splitlines()[0]
    raise ActionError(f"could not read the call {snippet!r}; write it as {_SIGNATURES[name]} with quoted text")


def _build(call: ast.Call) -> WebAction:
    name: str = call.func.id  # type: ignore[attr-defined]
    if call.keywords:
        raise ActionError(f"{name} takes positional arguments only: {_SIGNATURES[name]}")
    args = [_literal(arg, name) for arg in call.args]
    shape = tuple(type(a).__name__ for a in args)
    if name == "click" and len(args) == 1:
        return WebAction("click", element=_element(args[0], name))
    if name in ("fill", "select") and len(args) == 2 and isinstance(args[1], str | int | float):
        return WebAction(name, element=_element(args[0], name), text=str(args[1]))  # type: ignore[arg-type]
    if name == "press" and len(args) in (1, 2) and isinstance(args[-1], str) and args[-1]:
        element = _element(args[0], name) if len(args) == 2 else None
        return WebAction("press", element=element, text=args[-1])
    if name == "scroll" and len(args) == 1 and str(args[0]).lower() in ("up", "down"):
        return WebAction("scroll", text=str(args[0]).lower())
    if name == "goto" and len(args) == 1 and isinstance(args[0], str) and args[0].strip():
        return WebAction("goto", text=args[0].strip())
    if name == "answer" and len(args) == 1:
        return WebAction("answer", text=str(args[0]))
    got = ", ".join(shape) if shape else "no arguments"
    raise ActionError(f"{name} takes {_SIGNATURES[name]}; got {got}")


def _literal(node: ast.expr, name: str) -> Any:
    if isinstance(node, ast.Name):  # scroll(down), click(e12)
        return node.id
    if isinstance(node, ast.List) and len(node.elts) == 1:  # click([12]), copied from the tree
        return _literal(node.elts[0], name)
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ActionError(f"{name}: arguments must be numbers or quoted strings: {_SIGNATURES[name]}") from None


def _element(value: Any, name: str) -> int:
    text = str(value).strip().strip("[]")
    if isinstance(value, bool) or not re.fullmatch(r"e?\d+", text):
        raise ActionError(f"{name}: the element must be an id from the page tree, like 12; got {value!r}")
    return int(text.lstrip("e"))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def resolve_url(url: str, current: str, base: str) -> str:
    """Resolve ``url`` against the current page (``/path`` against the site server's ``base``)."""
    if url.startswith("/") and not url.startswith("//"):
        return urljoin(base, url)
    return urljoin(current or base, url)


def is_allowed_url(url: str, allowed_origins: tuple[str, ...] = ()) -> bool:
    """http(s) URLs on a loopback host, or on one of ``allowed_origins`` (``scheme://host[:port]``).

    The coarse rule of a browser without a site; ``resolve`` applies the episode's stricter one
    (``SiteOrigins``: the site server's origin and ``allowed_origins``, not all of loopback).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    if origin in {o.rstrip("/").lower() for o in allowed_origins}:
        return True
    host = parts.hostname.lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve(action: WebAction, tree: AXTree, *, current_url: str, base_url: str,
            allowed_origins: tuple[str, ...] = ()) -> tuple[WebAction, str | None, str | None]:
    """The action (option label as the page spells it), its element's Playwright ref and goto's URL.

    Raises ``ActionError`` for an id not in ``tree``, an option the drop-down lacks or a URL that is
    not on ``base_url``'s origin or one of ``allowed_origins``.
    """
    ref = url = None
    if action.element is not None:
        node = tree.by_id.get(action.element)
        ref = node.ref if node is not None else None
        if node is None or ref is None:
            raise ActionError(
                f"there is no element [{action.element}] on the page; use an id from the latest page tree")
        if action.name == "select" and node.options:
            labels = {o.strip().casefold(): o for o in node.options}
            label = labels.get((action.text or "").strip().casefold())
            if label is None:
                listed = ", ".join(f'"{o}"' for o in node.options[:20])
                raise ActionError(f'[{action.element}] has no option "{action.text}"; its options are {listed}')
            action = dataclasses.replace(action, text=label)
    if action.name == "goto":
        url = resolve_url(action.text or "", current_url, base_url)
        if not SiteOrigins.of(o for o in (base_url, *allowed_origins) if o).allows(url):
            raise ActionError(f"goto: {url} is not allowed; only pages of the task's site can be opened "
                              '(give a path, e.g. goto("/"))')
    return action, ref, url
