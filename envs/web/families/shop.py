"""The shop: buy the right product, in the right quantity, shipped to the right address.

Difficulty grows the catalog (8 to 48 products) and the goal: a product named outright (< 1/3),
the cheapest item of a colour in a category (< 2/3), the highest-rated item of a category under a
price limit with express shipping (the rest). Success is read from the order the shop recorded.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from selfgym.types import Task

from .base import (
    Evidence,
    OracleView,
    SiteTasks,
    Verdict,
    choose,
    click,
    fill,
    need,
    press,
    same_text,
)
from .people import address_for

__all__ = ["ShopTasks"]

CATEGORIES = {
    "Lamps": ["Desk Lamp", "Floor Lamp", "Reading Light", "Lantern"],
    "Chairs": ["Office Chair", "Armchair", "Stool", "Rocking Chair"],
    "Mugs": ["Coffee Mug", "Travel Mug", "Tea Cup", "Espresso Cup"],
    "Backpacks": ["Backpack", "Daypack", "Rucksack", "Laptop Bag"],
    "Headphones": ["Headphones", "Earbuds", "Headset", "Earphones"],
    "Kettles": ["Kettle", "Tea Kettle", "Water Boiler", "Gooseneck Kettle"],
    "Notebooks": ["Notebook", "Journal", "Sketchbook", "Planner"],
}
ADJECTIVES = ["Walnut", "Nordic", "Classic", "Compact", "Deluxe", "Urban", "Vintage", "Modern", "Cozy",
              "Rustic", "Sleek", "Studio", "Alpine", "Harbor", "Meadow", "Summit", "Coastal", "Metro"]
COLORS = ["Black", "White", "Blue", "Red", "Green", "Grey", "Yellow"]


class ShopTasks(SiteTasks):
    """Shopping tasks on the bundled shop (``/shop/``)."""

    family = "shop"
    site = "shop"

    def generate(self, rng: np.random.Generator, difficulty: float) -> tuple[str, dict[str, Any]]:
        products = _catalog(rng, 8 + round(40 * difficulty), 3 + round(3 * difficulty))
        target = products[int(rng.integers(len(products)))]
        qty = 1 if difficulty < 1 / 3 else int(rng.integers(1, 4))
        ship = {**address_for(rng), "method": "Standard"}
        if difficulty < 1 / 3:
            what = f'one "{target["name"]}"'
        elif difficulty < 2 / 3:
            _make_cheapest(target, products)
            what = f"{qty} of the cheapest {target['color'].lower()} item in the {target['category']} category"
            ship["method"] = str(rng.choice(["Standard", "Express"]))
        else:
            limit = _make_best_under(target, products, rng)
            what = (f"{qty} of the highest-rated item in the {target['category']} category that costs at most "
                    f"${limit:.2f}")
            ship["method"] = "Express"
        prompt = (f"In the shop, buy {what} and have it shipped to {ship['name']}, {ship['address']}, "
                  f"{ship['city']} with {ship['method'].lower()} shipping.")
        site = {"store": "Northwind Goods", "categories": sorted({p["category"] for p in products}),
                "products": products}
        return prompt, {"site": site, "target": target["id"], "qty": qty, "shipping": ship}

    def validate(self, task: Task, evidence: Evidence) -> Verdict:
        orders = evidence.app_state.get("orders") or []
        if not orders:
            return Verdict(done=evidence.answer is not None, message="no order was placed")
        order, want = orders[-1], task.payload
        problems = []
        if order.get("items") != [{"id": want["target"], "qty": want["qty"]}]:
            problems.append(f"ordered {order.get('items')}, wanted {want['qty']} x product {want['target']}")
        for key, value in want["shipping"].items():
            got = order.get("shipping" if key == "method" else key)
            if not same_text(str(got or ""), value):
                problems.append(f"{key} is {got!r}, wanted {value!r}")
        return Verdict(done=True, success=not problems, message="; ".join(problems) or "correct order")

    def oracle(self, task: Task, view: OracleView) -> str:
        want, tree = task.payload, view.tree
        target = next(p for p in want["site"]["products"] if p["id"] == want["target"])
        path = view.url.split("#", 1)[1] if "#" in view.url else "/"
        cart = view.app_state.get("cart") or []
        if cart != [{"id": target["id"], "qty": want["qty"]}]:
            return _fill_cart(tree, path, cart, target, want["qty"], want["site"]["products"])
        if not path.startswith("/checkout"):
            if path.startswith("/cart"):
                return click(need(tree.find("link", "Proceed to checkout"), "checkout link", tree))
            return click(need(tree.find("link", "Cart (", contains=True), "cart link", tree))
        ship = want["shipping"]
        for label, key in (("Full name", "name"), ("Street address", "address"), ("City", "city")):
            box = need(tree.find("textbox", label), f"{label} field", tree)
            if not same_text(box.value, ship[key]):
                return fill(box, ship[key])
        method = need(tree.find("combobox", "Shipping method"), "shipping menu", tree)
        if method.selected_option != ship["method"]:
            return choose(method, ship["method"])
        return click(need(tree.find("button", "Place order"), "order button", tree))


def _fill_cart(tree: Any, path: str, cart: list[dict[str, int]], target: dict[str, Any], qty: int,
               products: list[dict[str, Any]]) -> str:
    """The next step towards a cart that holds exactly ``qty`` of ``target``."""
    wrong = [item for item in cart if item["id"] != target["id"] or item["qty"] > qty]
    if wrong:
        if not path.startswith("/cart"):
            return click(need(tree.find("link", "Cart (", contains=True), "cart link", tree))
        name = next(p["name"] for p in products if p["id"] == wrong[0]["id"])
        return click(need(tree.find("button", f"Remove {name}"), "remove button", tree))
    have = next((item["qty"] for item in cart if item["id"] == target["id"]), 0)
    if path == f"/product/{target['id']}":
        box = need(tree.find("combobox", "Quantity"), "quantity menu", tree)
        if box.selected_option != str(qty - have):
            return choose(box, str(qty - have))
        return click(need(tree.find("button", "Add to cart"), "add-to-cart button", tree))
    link = tree.find("link", target["name"])
    if link is not None and path.startswith("/search"):
        return click(link)
    box = need(tree.find("searchbox", "Search products"), "search box", tree)
    if not same_text(box.value, target["name"]):
        return fill(box, target["name"])
    return press(box, "Enter")


def _catalog(rng: np.random.Generator, size: int, n_categories: int) -> list[dict[str, Any]]:
    categories = [str(c) for c in rng.choice(sorted(CATEGORIES), size=n_categories, replace=False)]
    products: list[dict[str, Any]] = []
    names: set[str] = set()
    while len(products) < size:
        category = categories[len(products) % n_categories]
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(CATEGORIES[category])}"
        if name in names:
            continue
        names.add(name)
        color = str(rng.choice(COLORS))
        products.append({
            "id": len(products) + 1,
            "name": name,
            "category": category,
            "color": color,
            "price": round(float(rng.integers(8, 250)) - 0.01, 2),
            "rating": round(float(rng.uniform(2.5, 5.0)), 1),
            "description": f"A {color.lower()} {name.split(' ', 1)[1].lower()} from our {category.lower()} range.",
        })
    return products


def _make_cheapest(target: dict[str, Any], products: list[dict[str, Any]]) -> None:
    """Make ``target`` strictly the cheapest of its colour in its category."""
    for p in products:
        if p is not target and p["category"] == target["category"] and p["color"] == target["color"]:
            if p["price"] <= target["price"]:
                p["price"] = round(target["price"] + 5 + p["id"] % 7, 2)


def _make_best_under(target: dict[str, Any], products: list[dict[str, Any]], rng: np.random.Generator) -> float:
    """Make ``target`` the best-rated of its category under a price limit; returns the limit."""
    target["rating"] = max(target["rating"], 3.6)
    limit = float(math.ceil(target["price"]) + int(rng.integers(5, 40)))
    for p in products:
        if p is not target and p["category"] == target["category"] and p["price"] <= limit:
            if p["rating"] >= target["rating"]:
                p["rating"] = round(target["rating"] - 0.1 - 0.1 * (p["id"] % 5), 1)
    return limit
