"""The contract between the web env and its task families.

The env owns the browser; a family owns the meaning of its tasks (as in BrowserGym):

* ``start(task) -> EpisodeStart``: where the page opens, the site data the server hands it, and
  scripts that seed and start the page's own task logic (MiniWoB++).
* ``validate(task, evidence) -> Verdict``: success read from the app's recorded state (or the
  page's own reward), after every action.
* ``oracle(task, view) -> str``: a correct next action for the page as it is now (tests, demos).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from selfgym.envs.tasks import MixedTaskSource, ProceduralTaskSource
from selfgym.types import Task

from ..actions import WebAction
from ..axtree import AXNode, AXTree

__all__ = [
    "EpisodeStart",
    "Evidence",
    "MixedTasks",
    "OracleView",
    "SiteTasks",
    "Verdict",
    "WebTaskFamily",
    "answer",
    "choose",
    "click",
    "fill",
    "need",
    "press",
    "same_text",
]


@dataclass(frozen=True, kw_only=True)
class EpisodeStart:
    """How an episode begins.

    Attributes:
        path: the start page on the site server (``/shop/``, ``/miniwob/miniwob/click-button.html``).
        data: the site data the server inlines into the page for this episode's session.
        setup_js: JavaScript run once the page has loaded (MiniWoB++: seed and start the task).
        ready_js: a JavaScript expression waited for after ``setup_js`` (until it is truthy).
        goal_js: an expression whose value replaces the task prompt as the goal (the page's own).
        state_js: an expression read after every action; ``Evidence.page_state`` for ``validate``.
    """

    path: str
    data: dict[str, Any] | None = None
    setup_js: str | None = None
    ready_js: str | None = None
    goal_js: str | None = None
    state_js: str | None = None


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """What ``validate`` sees after an action."""

    app_state: dict[str, Any]
    page_state: Any
    answer: str | None
    url: str


@dataclass(frozen=True)
class Verdict:
    """``done`` ends the episode; ``reward`` defaults to 1 for success, else 0."""

    done: bool
    success: bool = False
    message: str = ""
    reward: float | None = None

    @property
    def value(self) -> float:
        return float(self.success) if self.reward is None else self.reward


@dataclass(frozen=True, kw_only=True)
class OracleView:
    """The current page as the oracle sees it (the agent's tree plus privileged state)."""

    tree: AXTree
    url: str
    goal: str
    app_state: dict[str, Any]
    page_state: Any
    history: tuple[str, ...]


class WebTaskFamily(ABC):
    """A family of web tasks. Subclasses are also ``TaskSource``s."""

    family: str

    @abstractmethod
    def start(self, task: Task) -> EpisodeStart: ...

    @abstractmethod
    def validate(self, task: Task, evidence: Evidence) -> Verdict: ...

    @abstractmethod
    def oracle(self, task: Task, view: OracleView) -> str: ...


class SiteTasks(ProceduralTaskSource, WebTaskFamily):
    """A procedural family on one bundled site; ``generate`` puts the site data in ``payload["site"]``."""

    site: str = ""

    def start(self, task: Task) -> EpisodeStart:
        return EpisodeStart(path=f"/{self.site}/", data=task.payload["site"])


MixedTasks = MixedTaskSource  # the web families as one source


# ----------------------------------------------------------------- helpers for oracles
def need(node: AXNode | None, what: str, tree: AXTree) -> AXNode:
    """``node``, or a RuntimeError that shows the page (an oracle that cannot find its element is a bug)."""
    if node is None or node.id is None:
        raise RuntimeError(f"oracle: no {what} on the page:\n{tree.text}")
    return node


def click(node: AXNode) -> str:
    return str(WebAction("click", element=node.id))


def fill(node: AXNode, text: str) -> str:
    return str(WebAction("fill", element=node.id, text=text))


def choose(node: AXNode, option: str) -> str:
    return str(WebAction("select", element=node.id, text=option))


def press(node: AXNode, key: str) -> str:
    return str(WebAction("press", element=node.id, text=key))


def answer(text: str) -> str:
    return str(WebAction("answer", text=text))


def same_text(a: str | None, b: str | None) -> bool:
    """Equal after trimming, collapsing spaces and ignoring case (how the checks compare form input)."""
    return " ".join((a or "").split()).casefold() == " ".join((b or "").split()).casefold()
