"""MiniWoB++ as a task source: the HTML tasks of the ``miniwob`` package, served locally.

The page's own JavaScript makes the problem (seeded with ``Math.seedrandom``) and decides the
reward (``WOB_RAW_REWARD_GLOBAL``); the env only drives it with Playwright. The 10-second MiniWoB
timer is lifted (LLM agents think for longer) and the reward display, which shows a clock, is hidden.

The default task set is the tasks below, each with an oracle; any other MiniWoB++ task name
(``MiniWoBTasks(tasks=["click-link"])``) runs too, without an oracle. Task ids look like
``miniwob/click-button/s42``; seeds at or above the held-out base are the held-out split.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from selfgym.envs.tasks import ProceduralTaskSource
from selfgym.errors import ConfigError
from selfgym.types import Task

from ..axtree import AXTree
from ..server import miniwob_html_dir
from .base import EpisodeStart, Evidence, OracleView, Verdict, WebTaskFamily, choose, click, fill, need

__all__ = ["DIFFICULTY", "ORACLES", "MiniWoBTasks"]

Oracle = Callable[[str, AXTree, tuple[str, ...]], str]

_SETUP = """(seed => {
  const style = document.createElement("style");
  style.textContent = "#reward-display { display: none !important; }";
  document.head.appendChild(style);
  Math.seedrandom(seed);
  core.EPISODE_MAX_TIME = 1e9;
  core.startEpisodeReal();
})(%s)"""
_GOAL = "(u => typeof u === 'string' ? u : u.utterance)(core.getUtterance())"
_STATE = ("({done: WOB_DONE_GLOBAL, raw: WOB_RAW_REWARD_GLOBAL, "
          "reason: WOB_REWARD_REASON === null ? null : String(WOB_REWARD_REASON)})")
_ID = re.compile(r"^miniwob/(?P<name>[a-z0-9-]+)/s(?P<seed>\d+)$")


def _quoted(goal: str, n: int = 1) -> str:
    return re.findall(r'"([^"]*)"', goal)[n - 1]


def _after_select(goal: str) -> str:
    match = re.match(r"Select (.*?) (?:from the list )?and click Submit", goal)
    return match[1] if match else ""


def _textboxes(tree: AXTree) -> list[Any]:
    return tree.find_all("textbox")


def _submit(tree: AXTree, name: str = "Submit") -> str:
    return click(need(tree.find("button", name), f"{name} button", tree))


def _checkboxes(goal: str, tree: AXTree, history: tuple[str, ...]) -> str:
    wanted = _after_select(goal)
    targets = set() if wanted == "nothing" else set(re.split(r", ?", wanted))
    for box in tree.find_all("checkbox"):
        if box.checked != (box.name in targets):
            return click(box)
    return _submit(tree)


def _option(goal: str, tree: AXTree, history: tuple[str, ...]) -> str:
    radio = need(tree.find("radio", _after_select(goal)), "radio button", tree)
    return _submit(tree) if radio.checked else click(radio)


def _list(goal: str, tree: AXTree, history: tuple[str, ...]) -> str:
    menu = need(tree.find("combobox"), "list", tree)
    target = _after_select(goal)
    return _submit(tree) if menu.selected_option == target else choose(menu, target)


def _typed(transform: Callable[[str, str], str]) -> Oracle:
    """Type the goal's quoted text, changed by ``transform(text, goal)``, then submit."""

    def oracle(goal: str, tree: AXTree, history: tuple[str, ...]) -> str:
        box = need(next(iter(_textboxes(tree)), None), "text field", tree)
        text = transform(_quoted(goal), goal)
        return _submit(tree) if box.value == text else fill(box, text)

    return oracle


def _in_order(*steps: Callable[[str, AXTree], str]) -> Oracle:
    """An oracle that does ``steps`` one per turn (for fields whose content the tree hides)."""

    def oracle(goal: str, tree: AXTree, history: tuple[str, ...]) -> str:
        return steps[min(len(history), len(steps) - 1)](goal, tree)

    return oracle


ORACLES: dict[str, Oracle] = {
    "focus-text": lambda g, t, h: click(need(next(iter(_textboxes(t)), None), "text field", t)),
    "focus-text-2": lambda g, t, h: click(_textboxes(t)[int(re.search(r"\d+", g)[0]) - 1]),  # type: ignore[index]
    "click-button": lambda g, t, h: click(need(t.find("button", _quoted(g)), "target button", t)),
    "click-dialog": lambda g, t, h: click(need(t.find("button", "Close"), "close button", t)),
    "click-tab": lambda g, t, h: click(need(t.find("link", "Tab #" + re.findall(r"#(\d+)", g)[0]), "tab", t)),
    "click-collapsible-nodelay": _in_order(lambda g, t: click(need(t.find("tab", "Section", contains=True),
                                                                   "section", t)), lambda g, t: _submit(t)),
    "click-button-sequence": _in_order(lambda g, t: click(need(t.find("button", "ONE"), "ONE", t)),
                                       lambda g, t: click(need(t.find("button", "TWO"), "TWO", t))),
    "enter-text": _typed(lambda text, goal: text),
    "enter-text-2": _typed(lambda text, goal: text.lower() if "lower case" in goal else text.upper()),
    "click-option": _option,
    "choose-list": _list,
    "click-checkboxes": _checkboxes,
    "enter-password": _in_order(lambda g, t: fill(_textboxes(t)[0], _quoted(g)),
                                lambda g, t: fill(_textboxes(t)[1], _quoted(g)), lambda g, t: _submit(t)),
    "login-user": _in_order(lambda g, t: fill(_textboxes(t)[0], _quoted(g)),
                            lambda g, t: fill(_textboxes(t)[1], _quoted(g, 2)), lambda g, t: _submit(t, "Login")),
}
DIFFICULTY: dict[str, float] = {
    "focus-text": 0.0, "focus-text-2": 0.1, "click-button": 0.1, "click-dialog": 0.1, "click-tab": 0.2,
    "click-collapsible-nodelay": 0.2, "click-button-sequence": 0.2, "enter-text": 0.3, "enter-text-2": 0.4,
    "click-option": 0.3, "choose-list": 0.4, "click-checkboxes": 0.6, "enter-password": 0.5, "login-user": 0.5,
}


class MiniWoBTasks(ProceduralTaskSource, WebTaskFamily):
    """MiniWoB++ tasks; ``difficulty`` picks among the tasks nearest to it (``DIFFICULTY``)."""

    family = "miniwob"

    def __init__(self, *, tasks: Sequence[str] | None = None, name: str | None = None) -> None:
        super().__init__(name=name)
        html = miniwob_html_dir()
        if html is None:
            raise ConfigError("MiniWoB++ pages come from the miniwob package: pip install miniwob")
        self.available = sorted(p.stem for p in (html / "miniwob").glob("*.html"))
        self.task_names = list(tasks) if tasks is not None else list(ORACLES)
        unknown = sorted(set(self.task_names) - set(self.available))
        if unknown or not self.task_names:
            raise ConfigError(f"unknown MiniWoB++ tasks {unknown}; the package has: {', '.join(self.available)}")
        self.difficulty_levels = sorted({DIFFICULTY.get(n, 0.5) for n in self.task_names})

    def generate(self, rng: np.random.Generator, difficulty: float) -> tuple[str, dict[str, Any]]:
        nearest = min(self.difficulty_levels, key=lambda level: abs(level - difficulty))
        names = [n for n in self.task_names if DIFFICULTY.get(n, 0.5) == nearest]
        name = names[int(rng.integers(len(names)))]
        return f"MiniWoB++ {name}: do what the instruction at the top of the page asks.", {"task": name}

    def make(self, seed: int, difficulty: float) -> Task:
        base = super().make(seed, difficulty)
        return self._named(base, base.payload["task"], seed)

    def get(self, task_id: str) -> Task:
        match = _ID.match(task_id)
        if not match or match["name"] not in self.available:
            raise KeyError(task_id)
        name, seed = match["name"], int(match["seed"])
        base = super().make(seed, DIFFICULTY.get(name, 0.5))
        prompt = f"MiniWoB++ {name}: do what the instruction at the top of the page asks."
        return self._named(dataclasses.replace(base, prompt=prompt, payload={"task": name}), name, seed)

    def _named(self, task: Task, name: str, seed: int) -> Task:
        return dataclasses.replace(task, id=f"miniwob/{name}/s{seed}", difficulty=DIFFICULTY.get(name, 0.5),
                                   payload={"task": name, "seed": seed}, source="miniwob")

    def start(self, task: Task) -> EpisodeStart:
        name, seed = task.payload["task"], task.payload["seed"]
        return EpisodeStart(path=f"/miniwob/miniwob/{name}.html", setup_js=_SETUP % json.dumps(str(seed)),
                            ready_js="WOB_TASK_READY", goal_js=_GOAL, state_js=_STATE)

    def validate(self, task: Task, evidence: Evidence) -> Verdict:
        page = evidence.page_state or {}
        if not page.get("done"):
            message = "MiniWoB++ tasks are solved on the page, not answered" if evidence.answer is not None else ""
            return Verdict(done=evidence.answer is not None, message=message)
        raw = float(page.get("raw") or 0.0)
        return Verdict(done=True, success=raw >= 1.0, reward=max(raw, 0.0), message=page.get("reason") or "")

    def oracle(self, task: Task, view: OracleView) -> str:
        oracle = ORACLES.get(task.payload["task"])
        if oracle is None:
            raise NotImplementedError(
                f"MiniWoB++ task {task.payload['task']!r} has no oracle; the ones with: {sorted(ORACLES)}")
        return oracle(view.goal, view.tree, view.history)
