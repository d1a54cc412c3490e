"""A contacts and calendar service, and the ``tools-calendar`` family (find a common free slot)."""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np

from selfgym.types import Task

from .calls import answer_text, call_text
from .family import EpisodeContext, ToolFamily, Verdict
from .schema import Tool, tool

__all__ = ["CalendarTasks", "CalendarWorld"]

_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
DAY_START, DAY_END, GRID = 9 * 60, 17 * 60, 30
ME = "me"


def _minutes(hhmm: str) -> int:
    match = _TIME.match(hhmm)
    if not match:
        raise ValueError(f"time {hhmm!r} must be HH:MM, e.g. 09:30")
    return int(match[1]) * 60 + int(match[2])


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _check_date(date: str) -> str:
    try:
        return dt.date.fromisoformat(date).isoformat()
    except ValueError:
        raise ValueError(f"date {date!r} must be YYYY-MM-DD") from None


class CalendarWorld:
    """Contacts and events, in memory. ``"me"`` is the user's own id in attendee lists."""

    def __init__(self, contacts: list[dict[str, str]], events: list[dict[str, Any]]) -> None:
        self.contacts = copy.deepcopy(contacts)
        self.events = copy.deepcopy(events)
        self._next_id = len(events) + 1

    @tool
    def find_contacts(self, query: str) -> list[dict[str, str]]:
        """Find contacts whose name, email or team contains the query (case-insensitive).

        Args:
            query: part of a name, email or team.

        Returns:
            matching contacts, each {"id", "name", "email", "team"}.
        """
        needle = query.strip().casefold()
        if not needle:
            raise ValueError("query is empty")
        return [c for c in self.contacts if any(needle in c[k].casefold() for k in ("name", "email", "team"))]

    @tool
    def list_events(self, date: str, contact_id: str | None = None) -> list[dict[str, Any]]:
        """List the events on a day, optionally only those a contact attends.

        Args:
            date: the day, YYYY-MM-DD.
            contact_id: only events with this attendee ("me" for your own).
        """
        day = _check_date(date)
        events = [e for e in self.events if e["date"] == day]
        if contact_id is not None:
            events = [e for e in events if contact_id in e["attendees"]]
        return sorted(events, key=lambda e: e["start"])

    @tool
    def create_event(
        self,
        title: str,
        date: str,
        start: str,
        duration_min: Annotated[int, {"minimum": 15, "maximum": 480}],
        attendee_ids: list[str],
    ) -> dict[str, Any]:
        """Create an event; you ("me") attend every event you create.

        Args:
            title: the event title.
            date: the day, YYYY-MM-DD.
            start: the start time, HH:MM (24 h).
            duration_min: the length in minutes.
            attendee_ids: contact ids of the other attendees.

        Returns:
            the new event.
        """
        known = {c["id"] for c in self.contacts}
        unknown = [a for a in attendee_ids if a not in known and a != ME]
        if unknown:
            raise ValueError(f"unknown contact id(s) {unknown}; use find_contacts to get ids")
        begin = _minutes(start)
        if begin + duration_min > 24 * 60:
            raise ValueError("the event would run past midnight")
        event = {"id": f"e{self._next_id}", "title": title.strip(), "date": _check_date(date), "start": _hhmm(begin),
                 "end": _hhmm(begin + duration_min), "attendees": sorted({ME, *attendee_ids})}
        self._next_id += 1
        self.events.append(event)
        return event

    @tool
    def cancel_event(self, event_id: str) -> str:
        """Cancel an event.

        Args:
            event_id: the event's id.
        """
        for i, event in enumerate(self.events):
            if event["id"] == event_id:
                del self.events[i]
                return f"cancelled {event_id}"
        raise KeyError(f"no event {event_id!r}")

    def tools(self) -> list[Tool]:
        return [self.find_contacts, self.list_events, self.create_event, self.cancel_event]


_FIRST = ["Alice", "Bilal", "Carmen", "Dmitri", "Elif", "Femi", "Greta", "Hiro", "Ines", "Jakob", "Kofi", "Lucia"]
_LAST = ["Novak", "Okafor", "Petrov", "Quist", "Rossi", "Sato", "Tanaka", "Usman", "Varga", "Weber"]
_TEAMS = ["Sales", "Research", "Support", "Finance"]
_TITLES = ["Roadmap sync", "Budget review", "Design critique", "Hiring debrief", "Launch check-in"]
_BUSY = ["Standup", "1:1", "Focus time", "Customer call", "Lunch", "Interview"]


def earliest_slot(events: list[dict[str, Any]], people: set[str], date: str, duration: int) -> int | None:
    """The earliest grid start in working hours when none of ``people`` is busy, or None."""
    busy = [(_minutes(e["start"]), _minutes(e["end"])) for e in events
            if e["date"] == date and people & set(e["attendees"])]
    for start in range(DAY_START, DAY_END - duration + 1, GRID):
        if all(start + duration <= b or start >= e for b, e in busy):
            return start
    return None


class CalendarTasks(ToolFamily):
    """Schedule a meeting with 1-3 contacts at the earliest common free slot (on the half hour,
    09:00-17:00). ``difficulty`` adds attendees and distracting events."""

    family = "tools-calendar"

    def generate(self, rng: np.random.Generator, difficulty: float) -> tuple[str, dict[str, Any]]:
        n_people = 1 + int(round(difficulty * 2))
        picks = rng.choice(len(_FIRST) * len(_LAST), size=8, replace=False)
        contacts = []
        for i, pick in enumerate(picks, start=1):
            first, last = _FIRST[int(pick) % len(_FIRST)], _LAST[int(pick) // len(_FIRST)]
            contacts.append({"id": f"c{i}", "name": f"{first} {last}", "email": f"{first}.{last}@corp.example".lower(),
                             "team": _TEAMS[int(rng.integers(len(_TEAMS)))]})
        guests = [contacts[int(i)] for i in rng.choice(len(contacts), size=n_people, replace=False)]
        date = (dt.date(2025, 3, 3) + dt.timedelta(days=int(rng.integers(0, 5)))).isoformat()
        duration = int(rng.choice([30, 60, 90]))
        people = [ME, *(g["id"] for g in guests)]
        others = [c["id"] for c in contacts if c["id"] not in people]
        events = self._busy_events(rng, people, others, date, duration, difficulty)
        start = earliest_slot(events, set(people), date, duration)
        assert start is not None and start > DAY_START
        title = _TITLES[int(rng.integers(len(_TITLES)))]
        payload = {"contacts": contacts, "events": events, "date": date, "duration": duration, "title": title,
                   "guests": [g["id"] for g in guests], "start": _hhmm(start)}
        names = ", ".join(g["name"] for g in guests[:-1]) + (" and " if len(guests) > 1 else "") + guests[-1]["name"]
        prompt = (f"Schedule a {duration}-minute meeting titled '{title}' with {names} on {date}, at the earliest "
                  "time when you and every guest are free (working hours 09:00-17:00, starting on the hour or half "
                  "hour). Then answer with the start time (HH:MM).")
        return prompt, payload

    @staticmethod
    def _busy_events(rng: np.random.Generator, people: list[str], others: list[str], date: str, duration: int,
                     difficulty: float) -> list[dict[str, Any]]:
        """Busy events that block every grid start before a chosen one and leave it free."""
        target = DAY_START + GRID * int(rng.integers(1, (DAY_END - DAY_START - duration) // GRID + 1))
        spans: list[tuple[str, int, int]] = []
        for start in range(DAY_START, target, GRID):
            if any(b < start + duration and e > start for _, b, e in spans):
                continue  # this start is blocked already
            end = min(start + GRID * int(rng.integers(1, 4)), target)
            spans.append((people[int(rng.integers(len(people)))], start, end))
        for _ in range(int(round(difficulty * 4))):  # noise after the slot, and other people's events
            begin = target + duration + GRID * int(rng.integers(0, 4))
            if begin + GRID <= DAY_END:
                spans.append((people[int(rng.integers(len(people)))], begin, begin + GRID))
            other = others[int(rng.integers(len(others)))]
            begin = DAY_START + GRID * int(rng.integers(0, (DAY_END - DAY_START) // GRID))
            spans.append((other, begin, begin + GRID))
        return [{"id": f"e{i}", "title": _BUSY[int(rng.integers(len(_BUSY)))], "date": date, "start": _hhmm(b),
                 "end": _hhmm(e), "attendees": [who]} for i, (who, b, e) in enumerate(spans, start=1)]

    def open(self, task: Task, ctx: EpisodeContext) -> CalendarWorld:
        return CalendarWorld(task.payload["contacts"], task.payload["events"])

    def tools(self, world: CalendarWorld) -> Sequence[Tool]:
        return world.tools()

    def verify(self, task: Task, world: CalendarWorld, answer: str) -> Verdict:
        p = task.payload
        initial = {e["id"] for e in p["events"]}
        if not initial <= {e["id"] for e in world.events}:
            return Verdict(False, "existing events were cancelled")
        new = [e for e in world.events if e["id"] not in initial]
        if len(new) != 1:
            return Verdict(False, f"expected exactly one new event, found {len(new)}")
        event = new[0]
        if event["title"].casefold() != p["title"].casefold() or event["date"] != p["date"]:
            return Verdict(False, "the new event has the wrong title or date")
        if set(event["attendees"]) != {ME, *p["guests"]}:
            return Verdict(False, "the new event does not have exactly the requested guests")
        if _minutes(event["end"]) - _minutes(event["start"]) != p["duration"]:
            return Verdict(False, "the new event has the wrong length")
        if event["start"] != p["start"]:
            return Verdict(False, f"{event['start']} is not the earliest time when everyone is free")
        if p["start"] not in answer:
            return Verdict(False, "the event is right but the answer does not give its start time")
        return Verdict(True, "correct")

    def plan(self, task: Task, world: Any) -> list[str]:
        p = task.payload
        names = {c["id"]: c["name"] for c in p["contacts"]}
        lookups = [call_text("find_contacts", query=names[g]) for g in p["guests"]]
        return [
            *lookups,
            call_text("list_events", date=p["date"]),
            call_text("create_event", title=p["title"], date=p["date"], start=p["start"], duration_min=p["duration"],
                      attendee_ids=p["guests"]),
            answer_text(p["start"]),
        ]
