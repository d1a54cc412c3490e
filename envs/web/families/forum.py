"""The forum: find the thread about a device's problem and the firmware version that fixed it.

Below difficulty 0.5 the agent answers with ``answer("<version>")``; from 0.5 it must post a reply
naming the version in the right thread (read from the replies the forum saved). Difficulty grows
the forum (6 to 50 threads, paginated by 10), the replies per thread and the look-alike threads
(same device, other problem; same problem, other device), each with its own version.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from selfgym.types import Task

from .base import Evidence, OracleView, SiteTasks, Verdict, answer, click, fill, need, press, same_text
from .people import FIRST_NAMES

__all__ = ["ForumTasks"]

DEVICES = ["Photon X2", "Nimbus Hub", "Aster Cam", "Quill Tablet", "Vega Speaker", "Orbit Watch",
           "Kestrel Drone", "Tidal Sensor"]
PROBLEMS = ["keeps dropping the Wi-Fi connection", "will not pair over Bluetooth", "drains the battery overnight",
            "freezes during updates", "shows a blank screen after boot", "forgets its settings after a restart",
            "overheats while charging"]
BOARDS = [("Networking", "Routers, hubs and Wi-Fi"), ("Smart Home", "Hubs, sensors and cameras"),
          ("Gadgets", "Tablets, watches and speakers"), ("Flying", "Drones and their controllers")]
CHATTER = ["Have you tried a factory reset?", "Same here, following this thread.", "Check the power supply first.",
           "Mine does that too since last month.", "Support told me to wait for a fix.",
           "Did you contact the vendor?", "Try another cable, it helped a friend."]
FIXES = ["Firmware {v} fixed it for me.", "Updating to version {v} solved this.",
         "After installing firmware {v} the problem is gone.", "The {v} update sorted it out here."]
_VERSION = re.compile(r"\d+\.\d+(?:\.\d+)?")


class ForumTasks(SiteTasks):
    """Fact-finding and reply tasks on the bundled forum (``/forum/``)."""

    family = "forum"
    site = "forum"

    def generate(self, rng: np.random.Generator, difficulty: float) -> tuple[str, dict[str, Any]]:
        n_threads = 6 + round(44 * difficulty)
        pairs = [(d, p) for d in DEVICES for p in PROBLEMS]
        chosen = [pairs[i] for i in rng.choice(len(pairs), size=n_threads, replace=False)]
        boards = [{"id": i + 1, "name": n, "description": d} for i, (n, d) in enumerate(BOARDS)]
        versions: set[str] = set()
        threads: list[dict[str, Any]] = []
        for index, (device, problem) in enumerate(chosen):
            version = _new_version(rng, versions)
            author = _user(rng)
            posts = [{"author": author, "body": f"My {device} {problem}. Any ideas?"}]
            replies = [str(c) for c in rng.choice(CHATTER, size=1 + round(3 * difficulty), replace=False)]
            replies.insert(int(rng.integers(0, len(replies) + 1)), str(rng.choice(FIXES)).format(v=version))
            for body in replies:
                posts.append({"author": _user(rng), "body": body})
            threads.append({"id": index + 1, "board": int(rng.integers(1, len(boards) + 1)),
                            "title": f"{device} {problem}", "author": author, "posts": posts, "fix": version})
        target = threads[int(rng.integers(len(threads)))]
        device, problem = chosen[target["id"] - 1]
        if difficulty < 0.5:
            kind = "answer"
            prompt = (f"On the forum, which firmware version fixed the problem where the {device} {problem}? "
                      'Give just the version with answer("...").')
        else:
            kind = "reply"
            prompt = (f"On the forum, find the thread in which {target['author']} reports that the {device} "
                      f"{problem}, and post a reply in it that names the firmware version that fixed it.")
        site = {"forum": "Tinkerers Forum", "boards": boards,
                "threads": [{k: v for k, v in t.items() if k != "fix"} for t in threads]}
        return prompt, {"site": site, "kind": kind, "thread": target["id"], "version": target["fix"],
                        "title": target["title"], "query": device}

    def validate(self, task: Task, evidence: Evidence) -> Verdict:
        want = task.payload
        if want["kind"] == "answer":
            if evidence.answer is None:
                return Verdict(done=False)
            found = set(_VERSION.findall(evidence.answer))
            ok = found == {want["version"]}
            message = "right version" if ok else f"answered versions {sorted(found)}"
            return Verdict(done=True, success=ok, message=message)
        replies = evidence.app_state.get("replies") or []
        if not replies:
            return Verdict(done=evidence.answer is not None, message="no reply was posted")
        last = replies[-1]
        ok = last.get("thread") == want["thread"] and want["version"] in _VERSION.findall(str(last.get("body", "")))
        message = "right thread and version" if ok else f"reply {last!r} misses thread {want['thread']} or the version"
        return Verdict(done=True, success=ok, message=message)

    def oracle(self, task: Task, view: OracleView) -> str:
        want, tree = task.payload, view.tree
        path = view.url.split("#", 1)[1] if "#" in view.url else "/"
        if path == f"/thread/{want['thread']}":
            if want["kind"] == "answer":
                return answer(want["version"])
            box = need(tree.find("textbox", "Your reply"), "reply box", tree)
            text = f"Firmware {want['version']} fixed this."
            if not same_text(box.value, text):
                return fill(box, text)
            return click(need(tree.find("button", "Post reply"), "post button", tree))
        link = tree.find("link", want["title"])
        if link is not None:
            return click(link)
        box = need(tree.find("searchbox", "Search the forum"), "search box", tree)
        if not same_text(box.value, want["query"]):
            return fill(box, want["query"])
        return press(box, "Enter")


def _user(rng: np.random.Generator) -> str:
    return f"{rng.choice(FIRST_NAMES).lower()}{int(rng.integers(10, 100))}"


def _new_version(rng: np.random.Generator, taken: set[str]) -> str:
    while True:
        version = f"{int(rng.integers(1, 6))}.{int(rng.integers(0, 10))}.{int(rng.integers(0, 10))}"
        if version not in taken:
            taken.add(version)
            return version
