"""The trajectory table: filters from the URL, pages, counts, text search and the JSONL download.

Filters, sorts, counts and pages run on the process's in-memory mirror of the trajectory table
(``selfgym.view.mirror``, same table and column names as the store), so a page of a 100,000-episode
run costs an in-memory query. The text search reads the store's turns, one window of at most
``SEARCH_WINDOW`` trajectories (the newest that pass the other filters) per request; the page links
to the next, older window. The download streams full records from the store in batches.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from typing import Any

from selfgym.view.mirror import Mirror, mirror
from selfgym.view.queries import turns_of
from selfgym.view.source import ViewError

__all__ = ["SORTS", "Page", "TrajectoryFilter", "filter_choices", "jsonl_lines", "page"]

SEARCH_WINDOW = 1_000  # trajectories whose turns one text-search request reads
# sort name -> SQL (whitelisted: the sort comes from the URL); each has an index in the mirror
SORTS = {"newest": "t.rowid {d}", "iteration": "t.iteration {d}, t.rowid {d}",
         "reward": "t.total_reward {d}, t.rowid {d}", "turns": "t.n_turns {d}, t.rowid {d}",
         "success": "t.success {d}, t.rowid {d}", "task": "t.task_id {d}, t.rowid {d}",
         "difficulty": "t.difficulty {d}, t.rowid {d}", "family": "t.family {d}, t.rowid {d}"}
_FROM = "trajectories t"  # the mirror's table: the task's family, split and difficulty are columns of it
_COLUMNS = ("t.id, t.run_id, t.task_id, t.env_id, t.policy_id, t.iteration, t.attempt, t.success, t.total_reward, "
            "t.aborted, t.n_turns, t.created_at, t.family, t.split, t.difficulty")


@dataclass(frozen=True, kw_only=True)
class TrajectoryFilter:
    """What the trajectory table shows; every field comes from the URL (empty: no filter)."""

    run: str = ""
    iteration: str = ""
    family: str = ""
    split: str = ""
    difficulty: str = ""
    success: str = ""  # "1" | "0"
    aborted: str = "no"  # "no" | "yes" | "any"
    policy: str = ""
    task: str = ""
    q: str = ""  # text searched in the turns' actions and observations
    before: str = ""  # a text search: only trajectories older than this rowid (the next window)
    sort: str = "newest"
    order: str = "desc"
    page: int = 1
    per: int = 50

    @classmethod
    def from_query(cls, query: dict[str, str]) -> TrajectoryFilter:
        """Read and check the URL parameters.

        Raises:
            ViewError: (400) a parameter that is not a number where one is needed, an unknown sort.
        """
        names = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: v.strip() for k, v in query.items() if k in names}
        try:
            values["page"] = max(1, int(values.get("page", 1)))
            values["per"] = min(500, max(1, int(values.get("per", 50))))
            for name, kind in (("iteration", int), ("difficulty", float), ("before", int)):
                if values.get(name):
                    kind(values[name])
        except ValueError as exc:
            raise ViewError(400, "Bad filter", f"page, per, iteration and before take whole numbers, difficulty a "
                            f"number ({exc}).") from None
        if values.get("sort", "newest") not in SORTS:
            raise ViewError(400, "Bad sort", f"sort must be one of {', '.join(SORTS)}.")
        if values.get("order", "desc") not in ("asc", "desc"):
            raise ViewError(400, "Bad order", "order must be asc or desc.")
        if values.get("aborted", "no") not in ("no", "yes", "any"):
            raise ViewError(400, "Bad filter", "aborted must be no, yes or any.")
        return cls(**values)

    def query(self, **changes: Any) -> dict[str, str]:
        """This filter (changed) as URL parameters, defaults left out."""
        f, default = replace(self, **changes), TrajectoryFilter()
        return {x.name: str(getattr(f, x.name)) for x in fields(f) if getattr(f, x.name) != getattr(default, x.name)}

    def where(self) -> tuple[str, list[Any]]:
        """The ``WHERE`` clause over the mirror's ``trajectories t`` of every filter but the text."""
        clauses, params = ["1=1"], list[Any]()
        for column, value in (("t.run_id", self.run), ("t.family", self.family), ("t.split", self.split),
                              ("t.policy_id", self.policy), ("t.task_id", self.task)):
            if value:
                clauses.append(f"{column}=?")
                params.append(value)
        for clause, value, kind in (("t.iteration=?", self.iteration, int), ("ABS(t.difficulty - ?) < 1e-9",
                                    self.difficulty, float), ("t.rowid < ?", self.before, int)):
            if value:
                clauses.append(clause)
                params.append(kind(value))
        if self.success in ("0", "1"):
            clauses.append("t.success=?")
            params.append(int(self.success))
        if self.aborted != "any":
            clauses.append("t.aborted IS NULL" if self.aborted == "no" else "t.aborted IS NOT NULL")
        return " AND ".join(clauses), params


@dataclass
class Page:
    """One page of the trajectory table."""

    rows: list[dict[str, Any]]
    total: int | None  # trajectories that match; None for a text search
    more: bool  # a next page exists
    searched: int = 0  # a text search: trajectories whose turns were searched (the window)
    older: int | None = None  # a text search: ``before=`` that continues with older trajectories


def _order(f: TrajectoryFilter) -> str:
    return SORTS[f.sort].format(d=f.order.upper())


def page(store: sqlite3.Connection, f: TrajectoryFilter) -> Page:
    """One page of the table (``LIMIT``/``OFFSET`` on the mirror)."""
    where, params = f.where()
    with mirror(store) as m:
        if not f.q:
            rows = m.conn.execute(f"SELECT {_COLUMNS} FROM {_FROM} WHERE {where} ORDER BY {_order(f)} LIMIT ? OFFSET ?",
                                  [*params, f.per + 1, (f.page - 1) * f.per]).fetchall()
            return Page(rows=[dict(r) for r in rows[: f.per]], total=_count(m, f, where, params), more=len(rows) > f.per)
        window = [r[0] for r in m.conn.execute(f"SELECT t.rowid FROM {_FROM} WHERE {where} ORDER BY t.rowid DESC "
                                               "LIMIT ?", [*params, SEARCH_WINDOW])]
    matched = _text_matches(store, window, f.q)
    with mirror(store) as m:
        marks = ",".join("?" * len(matched))
        rows = m.conn.execute(f"SELECT {_COLUMNS} FROM {_FROM} WHERE t.rowid IN ({marks}) ORDER BY {_order(f)} "
                              "LIMIT ? OFFSET ?", [*matched, f.per + 1, (f.page - 1) * f.per]).fetchall()
    return Page(rows=[dict(r) for r in rows[: f.per]], total=None, more=len(rows) > f.per, searched=len(window),
                older=window[-1] if len(window) == SEARCH_WINDOW else None)


def _count(m: Mirror, f: TrajectoryFilter, where: str, params: list[Any]) -> int:
    """Matches: the run's running totals when only the run (and aborted) is filtered, else counted."""
    if f.run and not any((f.iteration, f.family, f.split, f.difficulty, f.success, f.policy, f.task, f.before)):
        t = m.totals(f.run)
        return {"any": t.n, "yes": t.aborted}.get(f.aborted, t.n - t.aborted)
    return int(m.conn.execute(f"SELECT COUNT(*) FROM {_FROM} WHERE {where}", params).fetchone()[0])


def _text_matches(store: sqlite3.Connection, rowids: list[int], text: str) -> list[int]:
    """The trajectories (store rowids) among ``rowids`` with ``text`` in an action or observation."""
    found: list[int] = []
    for start in range(0, len(rowids), 500):
        chunk = rowids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        found += [r[0] for r in store.execute(
            f"SELECT t.rowid FROM trajectories t WHERE t.rowid IN ({marks}) AND EXISTS (SELECT 1 FROM turns u WHERE "
            "u.trajectory_id = t.id AND (instr(u.action, ?) > 0 OR instr(u.observation, ?) > 0))", [*chunk, text, text])]
    return found


def jsonl_lines(store: sqlite3.Connection, f: TrajectoryFilter, batch: int = 200) -> Iterator[str]:
    """Every trajectory matching ``f`` (all pages; the text filter included) as JSON lines of
    ``Trajectory.to_dict()``, oldest first, read batch by batch."""
    where, params = f.where()
    last = 0
    while True:
        with mirror(store) as m:
            rowids = [r[0] for r in m.conn.execute(f"SELECT t.rowid FROM {_FROM} WHERE {where} AND t.rowid > ? "
                                                "ORDER BY t.rowid LIMIT ?", [*params, last, batch])]
        if not rowids:
            return
        last = rowids[-1]
        if f.q:
            rowids = _text_matches(store, rowids, f.q)
        marks = ",".join("?" * len(rowids))
        rows = store.execute(f"SELECT id, record FROM trajectories WHERE rowid IN ({marks}) ORDER BY rowid",
                             rowids).fetchall()
        turns = turns_of(store, [r["id"] for r in rows]) if rows else {}
        for r in rows:
            data = json.loads(r["record"])
            data["turns"] = turns.get(r["id"], [])
            yield json.dumps(data) + "\n"


def filter_choices(store: sqlite3.Connection, run_id: str) -> dict[str, list[Any]]:
    """The values the filter menus offer for a run (kept by the mirror as it copies)."""
    with mirror(store) as m:
        totals = m.totals(run_id)
        tasks = list(m.tasks.values())
        return {"iteration": sorted(totals.iterations), "policy": list(totals.policies),
                "family": sorted({t[0] for t in tasks}), "split": sorted({t[1] for t in tasks}),
                "difficulty": sorted({t[2] for t in tasks})[:50]}
