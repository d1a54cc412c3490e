"""Web task families without a browser: determinism, splits, the difficulty knob and the checks."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

import selfgym
from selfgym.envs.tasks import HELDOUT_SEED_BASE
from selfgym.envs.web.families import family_by_name, make_task_source
from selfgym.envs.web.families.base import Evidence, MixedTasks
from selfgym.envs.web.families.miniwob import ORACLES, MiniWoBTasks
from selfgym.errors import ConfigError

SITE_FAMILIES = ("shop", "forms", "forum")
needs_miniwob = pytest.mark.skipif(importlib.util.find_spec("miniwob") is None,
                                   reason="MiniWoB++ pages come from the miniwob package (pip install miniwob)")


def evidence(state: dict | None = None, answer: str | None = None, page: dict | None = None) -> Evidence:
    return Evidence(app_state=state or {}, page_state=page, answer=answer, url="/")


@pytest.mark.parametrize("name", [*SITE_FAMILIES, pytest.param("miniwob", marks=needs_miniwob)])
def test_same_seed_same_task_and_heldout_seeds_apart(name: str) -> None:
    source = family_by_name(name)
    a = source.sample(np.random.default_rng(7), split="train", difficulty=0.5)
    b = source.sample(np.random.default_rng(7), split="train", difficulty=0.5)
    assert a == b
    assert source.get(a.id) == a
    json.dumps(a.payload)  # the payload is JSON (the store keeps it)
    heldout = list(source.tasks("heldout", limit=3))
    assert all(t.split == "heldout" for t in heldout)
    assert not {t.id for t in heldout} & {t.id for t in source.tasks("train", limit=50)}


def test_difficulty_grows_the_shop_and_the_forum() -> None:
    shop, forum = family_by_name("shop"), family_by_name("forum")
    small, big = shop.make(1, 0.0), shop.make(1, 1.0)
    assert len(small.payload["site"]["products"]) < len(big.payload["site"]["products"])
    assert '"' in small.prompt and "highest-rated" in big.prompt
    assert len(forum.make(1, 0.0).payload["site"]["threads"]) < len(forum.make(1, 1.0).payload["site"]["threads"])
    assert forum.make(1, 0.0).payload["kind"] == "answer" and forum.make(1, 1.0).payload["kind"] == "reply"


def test_shop_goal_has_one_right_product() -> None:
    shop = family_by_name("shop")
    for seed in range(20):
        task = shop.make(seed, 0.5)  # "the cheapest <colour> item in <category>"
        products, target = task.payload["site"]["products"], task.payload["target"]
        goal = next(p for p in products if p["id"] == target)
        rivals = [p for p in products if p["category"] == goal["category"] and p["color"] == goal["color"]]
        assert min(rivals, key=lambda p: p["price"]) is goal
        assert sum(p["price"] == goal["price"] for p in rivals) == 1


def test_shop_check_reads_the_recorded_order() -> None:
    shop = family_by_name("shop")
    task = shop.make(3, 0.0)
    want = task.payload
    ship = want["shipping"]
    order = {"items": [{"id": want["target"], "qty": want["qty"]}], "name": ship["name"].upper(),
             "address": ship["address"], "city": ship["city"], "shipping": ship["method"]}
    assert shop.validate(task, evidence()).done is False
    assert shop.validate(task, evidence(answer="I bought it")).success is False  # a claim is not an order
    right = shop.validate(task, evidence({"orders": [order]}))
    assert right.done and right.success and right.value == 1.0
    wrong = shop.validate(task, evidence({"orders": [{**order, "items": [{"id": want["target"], "qty": 2}]}]}))
    assert wrong.done and not wrong.success and wrong.value == 0.0 and "ordered" in wrong.message


def test_forms_check_wants_every_field_exactly() -> None:
    forms = family_by_name("forms")
    task = next(t for t in forms.tasks("train", limit=20) if t.payload["kind"] == "booking" and t.difficulty == 1.0)
    record = dict(task.payload["expected"])
    assert forms.validate(task, evidence({"bookings": [record]})).success
    assert not forms.validate(task, evidence({"bookings": [{**record, "guests": str(record["guests"])}]})).success
    assert not forms.validate(task, evidence({"bookings": [{**record, "pickup": not record["pickup"]}]})).success


def test_forum_answer_must_name_exactly_the_version() -> None:
    forum = family_by_name("forum")
    task = forum.make(5, 0.0)
    version = task.payload["version"]
    assert forum.validate(task, evidence(answer=version)).success
    assert forum.validate(task, evidence(answer=f"Firmware {version}.")).success
    assert not forum.validate(task, evidence(answer=f"{version} or 9.9.9")).success
    assert not forum.validate(task, evidence(answer="no idea")).success
    assert forum.validate(task, evidence()).done is False
    reply_task = forum.make(5, 1.0)
    thread, version = reply_task.payload["thread"], reply_task.payload["version"]
    good = {"replies": [{"thread": thread, "body": f"Try {version}"}]}
    assert forum.validate(reply_task, evidence(good)).success
    assert not forum.validate(reply_task, evidence({"replies": [{"thread": thread + 1, "body": version}]})).success


@needs_miniwob
def test_miniwob_source_and_its_page_reward() -> None:
    source = MiniWoBTasks()
    assert set(source.task_names) == set(ORACLES)
    task = source.get("miniwob/click-button/s42")
    assert task.payload == {"task": "click-button", "seed": 42} and task.split == "train"
    assert source.get(f"miniwob/click-link/s{HELDOUT_SEED_BASE}").split == "heldout"  # any package task by id
    start = source.start(task)
    assert start.path == "/miniwob/miniwob/click-button.html" and '"42"' in start.setup_js
    assert source.validate(task, evidence(page={"done": True, "raw": 1.0})).success
    lost = source.validate(task, evidence(page={"done": True, "raw": -1.0}))
    assert lost.done and not lost.success and lost.value == 0.0
    assert source.validate(task, evidence(page={"done": False, "raw": 0})).done is False
    with pytest.raises(ConfigError, match="unknown MiniWoB"):
        MiniWoBTasks(tasks=["no-such-task"])
    easy = MiniWoBTasks(tasks=["click-button", "login-user"])
    assert easy.sample(np.random.default_rng(0), difficulty=0.0).payload["task"] == "click-button"


def test_mixed_source_spans_the_three_sites() -> None:
    mixed = make_task_source()
    assert isinstance(mixed, MixedTasks)
    first = list(mixed.tasks("train", limit=6))
    assert [t.family for t in first] == ["shop", "forms", "forum"] * 2
    assert mixed.get(first[4].id) == first[4]
    families = {mixed.sample(np.random.default_rng(s)).family for s in range(20)}
    assert families == set(SITE_FAMILIES)
    assert selfgym.make_task_source("web-forum").family == "forum"
