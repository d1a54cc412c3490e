"""The hotel site's forms: make a booking, or change account settings, exactly as asked.

Half the tasks are bookings, half settings changes. Difficulty sets how many fields must be set
(bookings: 0 to 5 optional fields beyond name and date; settings: 1 to 4 changes) and, from 0.5,
writes the check-in date in words (the form wants YYYY-MM-DD). Every other field must keep its
default. Success is read from the booking or settings record the site saved.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from selfgym.types import Task

from ..axtree import AXTree
from .base import Evidence, OracleView, SiteTasks, Verdict, choose, click, fill, need, same_text
from .people import person_name

__all__ = ["FormsTasks"]

ROOMS = ["Single", "Double", "Suite"]
LANGUAGES = ["English", "Deutsch", "Français", "Español", "Italiano", "Nederlands"]
TIMEZONES = ["UTC", "Europe/Lisbon", "Europe/Berlin", "America/New_York", "America/Chicago", "Asia/Tokyo"]
REQUESTS = ["A quiet room, please.", "Late arrival around 23:00.", "Extra pillows, please.",
            "A room on a high floor.", "A cot for a baby."]
BOOKING_DEFAULTS = {"nights": 1, "room": "Single", "guests": 1, "breakfast": False, "pickup": False, "requests": ""}
# (field label on the page, record key, kind) in page order
BOOKING_FIELDS = [("Guest name", "guest", "text"), ("Check-in date", "checkin", "text"), ("Nights", "nights", "menu"),
                  ("Room type", "room", "radio"), ("Guests", "guests", "number"),
                  ("Breakfast included", "breakfast", "check"), ("Airport pickup", "pickup", "check"),
                  ("Special requests", "requests", "text")]
SETTINGS_FIELDS = [("Display name", "display_name", "text"), ("Email", "email", "text"),
                   ("Language", "language", "menu"), ("Time zone", "timezone", "menu"),
                   ("Email newsletter", "newsletter", "check"), ("Two-factor authentication", "two_factor", "check"),
                   ("Theme", "theme", "radio")]


class FormsTasks(SiteTasks):
    """Booking and settings tasks on the bundled hotel site (``/forms/``)."""

    family = "forms"
    site = "forms"

    def generate(self, rng: np.random.Generator, difficulty: float) -> tuple[str, dict[str, Any]]:
        settings = _random_settings(rng)
        site = {"hotel": "Harbor View Hotel", "rooms": ROOMS, "languages": LANGUAGES, "timezones": TIMEZONES,
                "settings": settings}
        if rng.random() < 0.5:
            prompt, expected = _booking_goal(rng, difficulty)
            return prompt, {"site": site, "kind": "booking", "expected": expected}
        prompt, expected = _settings_goal(rng, difficulty, settings)
        return prompt, {"site": site, "kind": "settings", "expected": expected}

    def validate(self, task: Task, evidence: Evidence) -> Verdict:
        key = "bookings" if task.payload["kind"] == "booking" else "settings_saves"
        records = evidence.app_state.get(key) or []
        if not records:
            return Verdict(done=evidence.answer is not None, message=f"nothing was submitted ({key} is empty)")
        got, want = records[-1], task.payload["expected"]
        wrong = [f"{k} is {got.get(k)!r}, wanted {v!r}" for k, v in want.items() if not _same(got.get(k), v)]
        return Verdict(done=True, success=not wrong, message="; ".join(wrong) or "all fields as asked")

    def oracle(self, task: Task, view: OracleView) -> str:
        booking = task.payload["kind"] == "booking"
        tree, path = view.tree, view.url.split("#", 1)[1] if "#" in view.url else "/book"
        section = "/book" if booking else "/settings"
        if not (path == section or (booking and path in ("/", ""))):
            link = tree.find("link", "Book a room" if booking else "Account settings")
            return click(need(link, "section link", tree))
        for label, key, kind in BOOKING_FIELDS if booking else SETTINGS_FIELDS:
            step = _set_field(tree, label, kind, task.payload["expected"][key])
            if step is not None:
                return step
        return click(need(tree.find("button", "Book now" if booking else "Save settings"), "submit button", tree))


def _set_field(tree: AXTree, label: str, kind: str, value: Any) -> str | None:
    """The action that gives the field ``label`` the ``value``, or None if it has it already."""
    if kind == "check":
        box = need(tree.find("checkbox", label), f"{label} checkbox", tree)
        return click(box) if box.checked != bool(value) else None
    if kind == "radio":
        button = need(tree.find("radio", str(value)), f"{value} option", tree)
        return click(button) if not button.checked else None
    if kind == "menu":
        menu = need(tree.find("combobox", label), f"{label} menu", tree)
        return choose(menu, str(value)) if menu.selected_option != str(value) else None
    role = "spinbutton" if kind == "number" else "textbox"
    box = need(tree.find(role, label), f"{label} field", tree)
    return fill(box, str(value)) if not same_text(box.value, str(value)) else None


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, str):
        return isinstance(got, str) and same_text(got, want)
    return got == want and type(got) is type(want)


def _random_settings(rng: np.random.Generator) -> dict[str, Any]:
    name = person_name(rng)
    return {"display_name": name, "email": name.lower().replace(" ", ".") + "@example.org",
            "language": str(rng.choice(LANGUAGES)), "timezone": str(rng.choice(TIMEZONES)),
            "newsletter": bool(rng.random() < 0.5), "two_factor": bool(rng.random() < 0.5),
            "theme": str(rng.choice(["Light", "Dark"]))}


def _booking_goal(rng: np.random.Generator, difficulty: float) -> tuple[str, dict[str, Any]]:
    date = dt.date(2026, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365)))
    expected = {"guest": person_name(rng), "checkin": date.isoformat(), **BOOKING_DEFAULTS}
    when = f"{date:%B} {date.day}, {date.year}" if difficulty >= 0.5 else date.isoformat()
    parts = [f"for {expected['guest']}, checking in on {when}"]
    optional = ["nights", "room", "guests", "breakfast", "pickup", "requests"]
    for key in map(str, rng.choice(optional, size=round(5 * difficulty), replace=False)):
        if key == "nights":
            expected["nights"] = int(rng.integers(2, 15))
            parts.append(f"for {expected['nights']} nights")
        elif key == "room":
            expected["room"] = str(rng.choice(ROOMS[1:]))
            parts.append(f"in a {expected['room']} room")
        elif key == "guests":
            expected["guests"] = int(rng.integers(2, 7))
            parts.append(f"for {expected['guests']} guests")
        elif key in ("breakfast", "pickup"):
            expected[key] = True
            parts.append("with breakfast included" if key == "breakfast" else "with an airport pickup")
        else:
            expected["requests"] = str(rng.choice(REQUESTS))
            parts.append(f'with the special request "{expected["requests"]}"')
    prompt = "On the hotel site, book a room " + ", ".join(parts) + ". Leave every other option as it is."
    return prompt, expected


def _settings_goal(rng: np.random.Generator, difficulty: float, now: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    expected = dict(now)
    changes = []
    for key in map(str, rng.choice(list(now), size=1 + round(3 * difficulty), replace=False)):
        if key == "display_name":
            expected[key] = person_name(rng) + " " + str(rng.choice(["Jr.", "II", "B."]))
            changes.append(f'set the display name to "{expected[key]}"')
        elif key == "email":
            expected[key] = f"{expected['display_name'].split()[0].lower()}{int(rng.integers(10, 99))}@example.net"
            changes.append(f"change the email to {expected[key]}")
        elif key in ("language", "timezone"):
            options = LANGUAGES if key == "language" else TIMEZONES
            expected[key] = str(rng.choice([o for o in options if o != now[key]]))
            changes.append(f"set the {'language' if key == 'language' else 'time zone'} to {expected[key]}")
        elif key in ("newsletter", "two_factor"):
            expected[key] = not now[key]
            what = "the email newsletter" if key == "newsletter" else "two-factor authentication"
            changes.append(f"turn {'on' if expected[key] else 'off'} {what}")
        else:
            expected[key] = "Dark" if now[key] == "Light" else "Light"
            changes.append(f"switch to the {expected[key].lower()} theme")
    prompt = "In your account settings on the hotel site, " + ", ".join(changes) + ", then save."
    return prompt, expected
