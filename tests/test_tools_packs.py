"""The tool packs on their own: SQLite, files, calendar, shop, calculator (real state, real files)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from selfgym.envs.tools.agenda import CalendarTasks, CalendarWorld, earliest_slot
from selfgym.envs.tools.calculator import CalcTasks, calculate, convert_units, evaluate
from selfgym.envs.tools.family import EpisodeContext, answers_match, mentions
from selfgym.envs.tools.files import FileWorld
from selfgym.envs.tools.shop import ShopTasks, ShopWorld
from selfgym.envs.tools.sql import SqlTasks, SqlWorld


@pytest.fixture
def sql(tmp_path: Path):
    world = SqlWorld(tmp_path / "db.sqlite", query_timeout_s=0.3)
    world.load(SqlTasks().make(5, 1.0).payload)
    yield world
    world.close()


def test_sql_queries_are_read_only_and_inserts_check_names(sql: SqlWorld):
    rows = sql.run_query.fn(sql="SELECT COUNT(*) AS n FROM orders")["rows"]
    assert rows[0]["n"] >= 12
    with pytest.raises(Exception, match="readonly"):
        sql.run_query.fn(sql="DELETE FROM orders")
    with pytest.raises(ValueError, match="no column"):
        sql.insert_row.fn(table="orders", values={"customer_id": 1, "evil\"; DROP TABLE orders; --": 1})
    with pytest.raises(ValueError, match="no table 'orders; DROP TABLE customers'"):
        sql.insert_row.fn(table="orders; DROP TABLE customers", values={"x": 1})
    new = sql.insert_row.fn(table="orders", values={"customer_id": 1, "product_id": 1, "quantity": 2,
                                                   "ordered_on": "2025-01-01"})
    assert sql.run_query.fn(sql=f"SELECT quantity FROM orders WHERE id = {new['id']}")["rows"] == [{"quantity": 2}]
    assert sql.run_query.fn(sql="SELECT * FROM orders")["truncated"] is False
    assert sql.describe_table.fn(table="customers")[1] == {"column": "name", "type": "TEXT"}


def test_a_runaway_query_is_stopped(sql: SqlWorld):
    start = time.perf_counter()
    with pytest.raises(TimeoutError, match="ran longer than 0.3 s"):
        sql.run_query.fn(sql="WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT max(i) FROM r")
    elapsed = time.perf_counter() - start  # the query never ends on its own: any return is the stop
    assert elapsed < 30, f"stopped only after {elapsed:.1f} s"
    assert sql.run_query.fn(sql="SELECT 1 AS one")["rows"] == [{"one": 1}]


def test_sql_verifier_checks_the_database_not_the_calls(sql: SqlWorld):
    task = SqlTasks().make(5, 1.0)
    customer, product, quantity, date = task.payload["expected"]
    assert not SqlTasks().verify(task, sql, str(task.payload["answer"])).success
    row = {"customer_id": customer, "product_id": product, "quantity": quantity, "ordered_on": date}
    new_id = sql.insert_row.fn(table="orders", values=row)["id"]
    assert SqlTasks().verify(task, sql, f"The new order id is {new_id}.").success
    assert not SqlTasks().verify(task, sql, f"{new_id - 1} or {new_id}").success
    sql.insert_row.fn(table="orders", values=row)
    assert "exactly one new order" in SqlTasks().verify(task, sql, str(new_id)).message


def test_files_stay_inside_the_workspace(tmp_path: Path):
    root = tmp_path / "ws"
    root.mkdir()
    world = FileWorld(root)
    world.write_file.fn(path="/a/b.txt", content="x")
    assert (root / "a/b.txt").read_text() == "x" and world.list_dir.fn() == ["a/"]
    (tmp_path / "secret.txt").write_text("top secret")
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    for path in ("../secret.txt", "a/../../secret.txt", "link.txt"):
        with pytest.raises(PermissionError, match="outside the workspace"):
            world.read_file.fn(path=path)
    with pytest.raises(FileNotFoundError):
        world.read_file.fn(path="/etc/hostname")  # a leading / means the workspace root
    with pytest.raises(IsADirectoryError):
        world.read_file.fn(path="a")
    with pytest.raises(ValueError, match="limit"):
        world.write_file.fn(path="big.txt", content="x" * 100_001)
    assert world.delete_file.fn(path="a/b.txt") == "deleted a/b.txt" and not (root / "a/b.txt").exists()


def test_calendar_tools_and_earliest_slot():
    world = CalendarWorld([{"id": "c1", "name": "Ada Novak", "email": "ada@x", "team": "Sales"}], [
        {"id": "e1", "title": "x", "date": "2025-03-03", "start": "09:00", "end": "10:15", "attendees": ["me"]},
        {"id": "e2", "title": "y", "date": "2025-03-03", "start": "10:30", "end": "11:00", "attendees": ["c1"]},
    ])
    assert world.find_contacts.fn(query="sales")[0]["id"] == "c1"
    assert earliest_slot(world.events, {"me", "c1"}, "2025-03-03", 30) == 11 * 60
    assert earliest_slot(world.events, {"me"}, "2025-03-03", 30) == 10 * 60 + 30
    with pytest.raises(ValueError, match="HH:MM"):
        world.create_event.fn(title="t", date="2025-03-03", start="9am", duration_min=30, attendee_ids=[])
    with pytest.raises(ValueError, match="unknown contact"):
        world.create_event.fn(title="t", date="2025-03-03", start="11:00", duration_min=30, attendee_ids=["c9"])
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        world.list_events.fn(date="March 3")


def test_calendar_verifier_wants_the_earliest_common_slot():
    family = CalendarTasks()
    task = family.make(2, 1.0)
    p = task.payload
    for start, ok in (("16:00", False), (p["start"], True)):
        world = family.open(task, EpisodeContext())
        world.create_event.fn(title=p["title"], date=p["date"], start=start, duration_min=p["duration"],
                              attendee_ids=p["guests"])
        assert family.verify(task, world, start).success is ok
    world = family.open(task, EpisodeContext())
    world.create_event.fn(title=p["title"], date=p["date"], start=p["start"], duration_min=p["duration"],
                          attendee_ids=p["guests"][:-1])
    assert "requested guests" in family.verify(task, world, p["start"]).message


def test_shop_enforces_stock_coupons_and_balance():
    task = ShopTasks().make(4, 1.0)
    world = ShopWorld(task.payload["products"], balance=30.0, order_seq=100)
    cheapest = world.search_products.fn(category="mugs")[0]
    assert [p["category"] for p in world.search_products.fn(query="mug")] == ["mugs"] * 4
    with pytest.raises(ValueError, match="in stock"):
        world.add_to_cart.fn(product_id=cheapest["id"], quantity=99)
    with pytest.raises(ValueError, match="cart is empty"):
        world.checkout.fn()
    world.add_to_cart.fn(product_id=cheapest["id"], quantity=1)
    if cheapest["price"] < 50:
        with pytest.raises(ValueError, match="needs a subtotal of at least 50.00"):
            world.apply_coupon.fn(code="SAVE10")
    with pytest.raises(ValueError, match="does not exist"):
        world.apply_coupon.fn(code="FREE")
    world.balance = 0.0
    with pytest.raises(ValueError, match="exceeds your balance"):
        world.checkout.fn()
    world.balance = 1000.0
    order = world.checkout.fn()
    assert order["order_id"] == "A100" and world.cart == {} and world.balance == round(1000 - order["total"], 2)


def test_calculator_is_safe_and_exact():
    assert calculate.fn(expression="(12.5 + 3) * 4 / sqrt(4)") == 31.0
    assert calculate.fn(expression="2 ** 10 - 7 // 2 + 10 % 4") == 1023
    for expression, message in (("__import__('os').system('true')", "unsupported syntax"),
                                ("(1).__class__", "unsupported syntax"), ("9 ** 9 ** 9", "too large"),
                                ("x + 1", "unsupported syntax"), ("1 +", "not an arithmetic expression")):
        with pytest.raises(ValueError, match=message):
            evaluate(expression)
    with pytest.raises(ZeroDivisionError):
        evaluate("1 / 0")
    assert convert_units.fn(value=212, from_unit="f", to_unit="c") == pytest.approx(100)
    assert convert_units.fn(value=1, from_unit="mi", to_unit="km") == pytest.approx(1.609344)
    with pytest.raises(ValueError, match="cannot convert kg"):
        convert_units.fn(value=1, from_unit="kg", to_unit="km")
    task = CalcTasks().make(9, 1.0)
    assert CalcTasks().verify(task, None, f"{task.payload['answer']:.2f} units").success
    assert not CalcTasks().verify(task, None, f"{task.payload['answer'] + 1:.2f}").success


def test_answers_match_ignores_formatting_only():
    assert answers_match(" 1,234.50 ", "1234.5") and answers_match("'Blue.'", "blue") and answers_match("$12", "12")
    assert not answers_match("12", "13") and not answers_match("blue car", "blue")


def test_mentions_accepts_an_unambiguous_answer_in_a_sentence():
    assert mentions("The new order id is 13.", "13") and mentions("It is $1,234.50 in total", "1234.5")
    assert not mentions("12 or 13", "13") and not mentions("113", "13")
    assert mentions("Her email is ada.berg@example.org.", "ada.berg@example.org")
    assert not mentions("xada.berg@example.org", "ada.berg@example.org")
    assert not mentions("ada.berg@example.org.uk", "ada.berg@example.org")
