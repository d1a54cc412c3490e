"""The page as the agent reads it: a compact accessibility tree with stable element ids.

Playwright's AI-mode ARIA snapshot (``page.aria_snapshot(mode="ai")``) is YAML in which every
element that can be acted on carries a ``[ref=eN]``; Playwright keeps a ref on its element across
snapshots, and ``page.locator("aria-ref=eN")`` finds it again. ``AXTree`` turns that YAML into
lines like ``[12] button "Submit"``: refs become small integers (``ElementIds``, stable for the
episode), layout-only ``generic`` wrappers are dropped and their children hoisted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["AXNode", "AXTree", "ElementIds"]

_KEY = re.compile(r'^(?P<role>[A-Za-z][\w-]*)(?: "(?P<name>(?:[^"\\]|\\.)*)")?(?P<attrs>(?: \[[^\]]*\])*)$')
_ATTR = re.compile(r"\[([^\]=]+)(?:=([^\]]*))?\]")
# Roles that are clickable anyway: Playwright's [cursor=pointer] on them is noise.
_CLICKABLE_ROLES = frozenset({"link", "button", "tab", "checkbox", "radio", "menuitem", "option", "switch"})
_ENTRY_ROLES = frozenset({"textbox", "searchbox", "spinbutton", "combobox"})
_Loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)  # BaseLoader: every scalar stays a string


class ElementIds:
    """Maps Playwright refs (``e12``, ``f1e3``) to episode ids (1, 2, ...) in order of first sight."""

    def __init__(self) -> None:
        self._by_ref: dict[str, int] = {}

    def id_of(self, ref: str) -> int:
        return self._by_ref.setdefault(ref, len(self._by_ref) + 1)


@dataclass
class AXNode:
    """One element of the tree. ``value`` is a text field's content or a leaf's text."""

    role: str
    name: str = ""
    id: int | None = None
    ref: str | None = None  # Playwright's aria ref: page.locator(f"aria-ref={ref}") finds the element
    value: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    props: dict[str, str] = field(default_factory=dict)  # /url, /placeholder
    children: list[AXNode] = field(default_factory=list)

    @property
    def checked(self) -> bool:
        return self.attrs.get("checked") in ("", "true")

    @property
    def selected_option(self) -> str | None:
        """The selected option of a combobox or listbox, by label."""
        for child in self.children:
            if child.role == "option" and "selected" in child.attrs:
                return child.name
        return None

    @property
    def options(self) -> list[str]:
        return [child.name for child in self.children if child.role == "option"]

    def walk(self) -> Iterator[AXNode]:
        yield self
        for child in self.children:
            yield from child.walk()

    def text_content(self) -> str:
        """Name, value and the text of every descendant, space-joined."""
        parts = [p for node in self.walk() for p in (node.name, node.value or "") if p]
        return " ".join(parts)


class AXTree:
    """A parsed snapshot: ``nodes`` (the tree), ``by_id`` and the agent-facing ``text``."""

    def __init__(self, nodes: list[AXNode]) -> None:
        self.nodes = nodes
        self.by_id = {node.id: node for root in nodes for node in root.walk() if node.id is not None}
        self.text = "\n".join(_render(nodes, 0))

    @classmethod
    def from_snapshot(cls, snapshot: str, ids: ElementIds) -> AXTree:
        """Parse ``page.aria_snapshot(mode="ai")`` output; refs are numbered through ``ids``."""
        data = yaml.load(snapshot, Loader=_Loader) or []
        return cls(_parse_items(data if isinstance(data, list) else [data], ids))

    def __contains__(self, element_id: object) -> bool:
        return element_id in self.by_id

    def walk(self) -> Iterator[AXNode]:
        for root in self.nodes:
            yield from root.walk()

    def find(self, role: str, name: str | None = None, *, contains: bool = False) -> AXNode | None:
        """The first element with this role (and accessible name, exact or a substring)."""
        for node in self.walk():
            if node.role != role or node.id is None:
                continue
            if name is None or node.name == name or (contains and name.lower() in node.name.lower()):
                return node
        return None

    def find_all(self, role: str) -> list[AXNode]:
        return [node for node in self.walk() if node.role == role and node.id is not None]


def _parse_items(items: list[Any], ids: ElementIds) -> list[AXNode]:
    nodes: list[AXNode] = []
    for item in items:
        if isinstance(item, str):
            node = _parse_key(item, ids)
            if node is not None:
                nodes.append(node)
            continue
        if not isinstance(item, dict):
            continue
        for key, body in item.items():
            if key.startswith("/"):  # a property of the parent (handled by the caller)
                continue
            node = _parse_key(key, ids)
            if node is None:
                continue
            if isinstance(body, list):
                for child in body:
                    if isinstance(child, dict):
                        node.props.update({k[1:]: str(v) for k, v in child.items() if k.startswith("/")})
                node.children = _parse_items(body, ids)
                if node.role in _ENTRY_ROLES and node.children and node.children[0].role == "text":
                    node.value = node.children.pop(0).value  # a field with a placeholder lists its value as text
            elif body is not None:
                node.value = str(body)
            nodes.append(node)
    return nodes


def _parse_key(key: str, ids: ElementIds) -> AXNode | None:
    if key == "text":
        return AXNode(role="text")
    match = _KEY.match(key)
    if match is None:
        return AXNode(role="text", value=key)
    attrs = {k: v for k, v in _ATTR.findall(match["attrs"] or "")}
    ref = attrs.pop("ref", None)
    name = match["name"] or ""
    if "\\" in name:
        try:
            name = json.loads(f'"{name}"')
        except ValueError:
            pass
    return AXNode(role=match["role"], name=name, id=ids.id_of(ref) if ref else None, ref=ref, attrs=attrs)


def _is_wrapper(node: AXNode) -> bool:
    """A ``generic`` with no name, text or state of its own: pure layout."""
    return node.role == "generic" and not node.name and node.value is None and set(node.attrs) <= {"active"}


def _render(nodes: list[AXNode], depth: int) -> Iterator[str]:
    pad = "  " * depth
    previous = ""
    for node in nodes:
        if _is_wrapper(node):
            yield from _render(node.children, depth)
            continue
        if node.role == "text":
            if node.value and node.value.strip() != previous:  # a label repeating its control's name
                yield f"{pad}text: {node.value}"
            continue
        previous = node.name
        head = f"[{node.id}] " if node.id is not None else ""
        name = f" {json.dumps(node.name, ensure_ascii=False)}" if node.name else ""
        attrs = "".join(f" [{k}={v}]" if v else f" [{k}]" for k, v in node.attrs.items()
                        if not (k == "cursor" and node.role in _CLICKABLE_ROLES))
        value = f": {node.value}" if node.value is not None else ""
        url = f" -> {node.props['url']}" if "url" in node.props else ""
        url += "".join(f" {k}={json.dumps(v, ensure_ascii=False)}" for k, v in node.props.items() if k != "url")
        yield f"{pad}{head}{node.role}{name}{attrs}{url}{value}"
        yield from _render(node.children, depth + 1)
