"""SQLite tools on a per-episode database file, and the ``tools-sql`` family.

Queries run on a read-only connection (``mode=ro``) with a deadline and an authorizer that lets a
statement read this episode's database and nothing else (``_ReadGuard``), so an agent can neither
change data through ``run_query`` nor reach another file; ``insert_row`` is the only write and
checks table and column names.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from selfgym.types import Task

from .calls import answer_text, call_text
from .family import EpisodeContext, ToolFamily, Verdict, mentions
from .schema import Tool, tool

__all__ = ["SqlTasks", "SqlWorld"]

_SCHEMA = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, city TEXT NOT NULL);
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
                     product_id INTEGER NOT NULL REFERENCES products(id), quantity INTEGER NOT NULL,
                     ordered_on TEXT NOT NULL);
"""
_MAX_ROWS = 50

# Authorizer actions by code, for refusals that name what was asked ("DELETE", "TRANSACTION").
_ACTIONS = {getattr(sqlite3, f"SQLITE_{name}"): name.replace("_", " ") for name in (
    "CREATE_INDEX", "CREATE_TABLE", "CREATE_TEMP_INDEX", "CREATE_TEMP_TABLE", "CREATE_TEMP_TRIGGER",
    "CREATE_TEMP_VIEW", "CREATE_TRIGGER", "CREATE_VIEW", "DELETE", "DROP_INDEX", "DROP_TABLE", "DROP_TEMP_INDEX",
    "DROP_TEMP_TABLE", "DROP_TEMP_TRIGGER", "DROP_TEMP_VIEW", "DROP_TRIGGER", "DROP_VIEW", "INSERT", "PRAGMA",
    "READ", "SELECT", "TRANSACTION", "UPDATE", "ATTACH", "DETACH", "ALTER_TABLE", "REINDEX", "ANALYZE",
    "CREATE_VTABLE", "DROP_VTABLE", "FUNCTION", "SAVEPOINT", "RECURSIVE")}
_READS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE}
# Pragmas that describe this database's tables and nothing else (no file names, no settings).
_SCHEMA_PRAGMAS = frozenset({"table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
                             "foreign_key_list"})
# Functions that reach the file system or process memory (the last three exist in some builds only).
_DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"})


class _ReadGuard:
    """SQLite authorizer for ``run_query``: reads of the episode's database, nothing else.

    Refused: ``ATTACH``/``DETACH`` (and ``VACUUM INTO``, which attaches its target) since they
    reach other files; pragmas other than the schema ones (``database_list`` shows host paths,
    others change settings); writes, temp tables and transactions; ``load_extension`` and the like.
    ``refused`` names the statement's first refusal, for the agent's observation.
    """

    def __init__(self) -> None:
        self.refused: str | None = None

    def __call__(self, action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None) -> int:
        if action in _READS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _SCHEMA_PRAGMAS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() not in _DENIED_FUNCTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_UPDATE and arg1 in ("sqlite_master", "sqlite_temp_master") and source is None:
            # SQLite's own step when a pragma table-valued function (pragma_table_info) is first used;
            # a user's UPDATE of the schema table is refused by SQLite itself, and main is read-only.
            return sqlite3.SQLITE_OK
        name = _ACTIONS.get(action, f"action {action}")
        if arg1 in ("sqlite_master", "sqlite_temp_master"):  # CREATE and DROP start by writing the schema table
            name = "changing the schema (CREATE, DROP)"
        elif action == sqlite3.SQLITE_PRAGMA:
            name = f"PRAGMA {arg1}"
        elif action == sqlite3.SQLITE_FUNCTION:
            name = f"function {arg2}"
        self.refused = self.refused or name
        return sqlite3.SQLITE_DENY


class SqlWorld:
    """One episode's SQLite database file and its tools."""

    def __init__(self, path: Path, *, query_timeout_s: float = 2.0) -> None:
        self.path = path
        self.query_timeout_s = query_timeout_s
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA synchronous = OFF")  # an episode's database need not survive a power cut
        self._reader: sqlite3.Connection | None = None
        self._guard = _ReadGuard()

    def load(self, payload: dict[str, Any]) -> None:
        self.db.executescript(f"BEGIN; {_SCHEMA} COMMIT;")
        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", payload["customers"])
        self.db.executemany("INSERT INTO products VALUES (?, ?, ?)", payload["products"])
        self.db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", payload["orders"])
        self.db.execute("COMMIT")

    @property
    def reader(self) -> sqlite3.Connection:
        if self._reader is None:
            self._reader = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._reader.row_factory = sqlite3.Row
            self._reader.set_authorizer(self._guard)
            self._reader.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)  # a second lock on other files
        return self._reader

    def close(self) -> None:
        for conn in (self._reader, self.db):
            if conn is not None:
                conn.close()

    def _tables(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]

    def _columns(self, table: str) -> list[tuple[str, str]]:
        if table not in self._tables():
            raise ValueError(f"no table {table!r}; tables: {', '.join(self._tables())}")
        return [(r[1], r[2]) for r in self.db.execute(f'PRAGMA table_info("{table}")')]

    @tool
    def list_tables(self) -> list[str]:
        """List the tables of the database."""
        return self._tables()

    @tool
    def describe_table(self, table: str) -> list[dict[str, str]]:
        """Show the columns of a table.

        Args:
            table: the table name.

        Returns:
            one {"column", "type"} object per column.
        """
        return [{"column": name, "type": kind} for name, kind in self._columns(table)]

    @tool
    def run_query(self, sql: str) -> dict[str, Any]:
        """Run a read-only SQL query (SQLite dialect) and return its rows (at most 50).

        Args:
            sql: one SELECT statement.

        Returns:
            {"rows": [...], "truncated": bool}, each row an object keyed by column name.
        """
        deadline = time.monotonic() + self.query_timeout_s
        self.reader.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
        cursor = self.reader.cursor()
        self._guard.refused = None
        try:
            rows = cursor.execute(sql).fetchmany(_MAX_ROWS + 1)
        except sqlite3.DatabaseError as exc:
            if self._guard.refused is not None:
                raise PermissionError(f"{self._guard.refused} is not allowed: run_query is readonly and reads this "
                                      "episode's database only (SELECT or WITH, PRAGMA table_info)") from None
            if "interrupted" in str(exc):
                raise TimeoutError(f"the query ran longer than {self.query_timeout_s:g} s and was stopped") from None
            raise
        finally:
            cursor.close()  # ends the read transaction, so insert_row is not blocked by its lock
            self.reader.set_progress_handler(None, 0)
        return {"rows": [dict(r) for r in rows[:_MAX_ROWS]], "truncated": len(rows) > _MAX_ROWS}

    @tool
    def insert_row(self, table: str, values: dict[str, Any]) -> dict[str, int]:
        """Insert one row into a table.

        Args:
            table: the table name.
            values: column name -> value; the id is assigned when omitted.

        Returns:
            {"id": the new row's id}.
        """
        known = {name for name, _ in self._columns(table)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"table {table!r} has no column(s) {unknown}; columns: {sorted(known)}")
        if not values:
            raise ValueError("values is empty; give at least one column")
        columns = ", ".join(f'"{c}"' for c in values)
        marks = ", ".join("?" for _ in values)
        cursor = self.db.execute(f'INSERT INTO "{table}" ({columns}) VALUES ({marks})', list(values.values()))
        return {"id": int(cursor.lastrowid or 0)}

    def tools(self) -> list[Tool]:
        return [self.list_tables, self.describe_table, self.run_query, self.insert_row]


_FIRST = ["Ada", "Bruno", "Chen", "Dalia", "Emil", "Farah", "Goran", "Hana", "Ivo", "Jonas", "Keiko", "Lena"]
_LAST = ["Abbott", "Berg", "Castro", "Dahl", "Ekström", "Fischer", "Garcia", "Horvat", "Ibsen", "Jansen"]
_CITIES = ["Lisbon", "Oslo", "Porto", "Graz", "Lyon", "Turin"]
_PRODUCTS = ["desk lamp", "notebook", "stapler", "monitor arm", "keyboard", "headset", "webcam", "mouse pad"]


class SqlTasks(ToolFamily):
    """Questions and updates on a shop database: a lookup (difficulty < 1/3), a join and sum
    (< 2/3), or repeating a customer's latest order with twice the quantity (checked in the DB)."""

    family = "tools-sql"

    def generate(self, rng: np.random.Generator, difficulty: float) -> tuple[str, dict[str, Any]]:
        n_customers = int(rng.integers(5, 9))
        picks = rng.choice(len(_FIRST) * len(_LAST), size=n_customers, replace=False)
        customers: list[list[Any]] = []
        for cid, pick in enumerate(picks, start=1):
            first, last = _FIRST[int(pick) // len(_LAST)], _LAST[int(pick) % len(_LAST)]
            email = f"{first.lower()}.{last.lower()}@example.org".replace("ö", "o")
            customers.append([cid, f"{first} {last}", email, _CITIES[int(rng.integers(len(_CITIES)))]])
        names = rng.choice(_PRODUCTS, size=6, replace=False)
        products: list[list[Any]] = [[pid, str(n), round(float(rng.integers(300, 9000)) / 100, 2)] for pid, n in enumerate(names, 1)]
        n_orders = int(rng.integers(12, 21))
        days = np.sort(rng.choice(365, size=n_orders, replace=False))
        orders: list[list[Any]] = [[oid, int(rng.integers(1, n_customers + 1)), int(rng.integers(1, 7)), int(rng.integers(1, 6)),
                   (dt.date(2024, 1, 1) + dt.timedelta(days=int(d))).isoformat()] for oid, d in enumerate(days, 1)]
        payload: dict[str, Any] = {"customers": customers, "products": products, "orders": orders}
        if difficulty < 1 / 3:
            who = customers[int(rng.integers(n_customers))]
            payload.update(kind="lookup", customer=who[1], answer=who[2])
            return f"What is the email address of the customer named {who[1]}? Use the database tools.", payload
        if difficulty < 2 / 3:
            order = orders[int(rng.integers(n_orders))]
            city = customers[order[1] - 1][3]
            product = products[order[2] - 1][1]
            total = sum(o[3] for o in orders if o[2] == order[2] and customers[o[1] - 1][3] == city)
            payload.update(kind="aggregate", city=city, product=product, answer=total)
            return (f"How many units of '{product}' have customers from {city} ordered in total? Use the database "
                    "tools and answer with a number."), payload
        buyer = orders[int(rng.integers(n_orders))][1]
        latest = max((o for o in orders if o[1] == buyer), key=lambda o: o[4])
        payload.update(kind="reorder", customer=customers[buyer - 1][1], date="2025-01-15",
                       expected=[buyer, latest[2], 2 * latest[3], "2025-01-15"], answer=n_orders + 1)
        return (f"{customers[buyer - 1][1]} wants to repeat their most recent order with twice the quantity. Insert "
                "the new order into the orders table, dated 2025-01-15, and answer with the new order's id."), payload

    def open(self, task: Task, ctx: EpisodeContext) -> SqlWorld:
        world = SqlWorld(ctx.workdir / "shop.sqlite")
        world.load(task.payload)
        return world

    def tools(self, world: SqlWorld) -> Sequence[Tool]:
        return world.tools()

    def close(self, world: SqlWorld) -> None:
        world.close()

    def verify(self, task: Task, world: SqlWorld, answer: str) -> Verdict:
        payload = task.payload
        if payload["kind"] != "reorder":
            ok = mentions(answer, str(payload["answer"]))
            return Verdict(ok, "correct" if ok else "that is not the right answer")
        cursor = world.db.execute("SELECT id, customer_id, product_id, quantity, ordered_on FROM orders ORDER BY id")
        rows = [list(r) for r in cursor]
        old = len(payload["orders"])
        if rows[:old] != payload["orders"]:
            return Verdict(False, "existing orders were changed")
        added = rows[old:]
        if len(added) != 1:
            return Verdict(False, f"expected exactly one new order, found {len(added)}")
        if added[0][1:] != payload["expected"]:
            return Verdict(False, "the new order does not repeat the latest order with twice the quantity")
        if not mentions(answer, str(added[0][0])):
            return Verdict(False, "the order is right but the answer is not its id")
        return Verdict(True, "correct: the order was placed")

    def plan(self, task: Task, world: Any) -> list[str]:
        payload = task.payload
        kind = payload["kind"]
        if kind == "lookup":
            return [call_text("run_query", sql=f"SELECT email FROM customers WHERE name = '{payload['customer']}'"),
                    answer_text(payload["answer"])]
        if kind == "aggregate":
            pid = next(p[0] for p in payload["products"] if p[1] == payload["product"])
            return [
                call_text("run_query", sql=f"SELECT id FROM products WHERE name = '{payload['product']}'"),
                call_text("run_query", sql="SELECT SUM(o.quantity) AS units FROM orders o JOIN customers c ON "
                          f"c.id = o.customer_id WHERE c.city = '{payload['city']}' AND o.product_id = {pid}"),
                answer_text(payload["answer"]),
            ]
        customer_id, product_id, quantity, date = payload["expected"]
        return [
            call_text("list_tables"),
            call_text("describe_table", table="orders"),
            call_text("run_query", sql=f"SELECT id FROM customers WHERE name = '{payload['customer']}'"),
            call_text("run_query", sql="SELECT product_id, quantity FROM orders WHERE customer_id = "
                      f"{customer_id} ORDER BY ordered_on DESC LIMIT 1"),
            call_text("insert_row", table="orders", values={"customer_id": customer_id, "product_id": product_id,
                                                             "quantity": quantity, "ordered_on": date}),
            answer_text(payload["answer"]),
        ]
