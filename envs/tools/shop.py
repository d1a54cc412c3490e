"""An HTTP-free shop API (catalogue, cart, coupons, checkout) and the ``tools-shop`` family."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np

from selfgym.types import Task

from .calls import answer_text, call_text
from .family import EpisodeContext, ToolFamily, Verdict
from .schema import Tool, tool

__all__ = ["ShopTasks", "ShopWorld"]

Category = Literal["lamps", "chairs", "mugs", "backpacks", "headphones"]
CATEGORIES: tuple[str, ...] = Category.__args__  # type: ignore[attr-defined]
COUPONS = {"SAVE10": {"percent": 10, "min_subtotal": 50.0}}


class ShopWorld:
    """One customer's session in the shop: catalogue, balance, cart and orders."""

    def __init__(self, products: list[dict[str, Any]], *, balance: float, order_seq: int) -> None:
        self.products = {p["id"]: dict(p) for p in copy.deepcopy(products)}
        self.balance = balance
        self.cart: dict[str, int] = {}
        self.coupon: str | None = None
        self.orders: list[dict[str, Any]] = []
        self._order_seq = order_seq

    def _product(self, product_id: str) -> dict[str, Any]:
        if product_id not in self.products:
            raise KeyError(f"no product {product_id!r}; search_products lists product ids")
        return self.products[product_id]

    def _summary(self) -> dict[str, Any]:
        items = [{"product_id": pid, "name": self.products[pid]["name"], "quantity": q,
                  "line_total": round(self.products[pid]["price"] * q, 2)} for pid, q in self.cart.items()]
        subtotal = round(sum(i["line_total"] for i in items), 2)
        discount = round(subtotal * COUPONS[self.coupon]["percent"] / 100, 2) if self.coupon else 0.0
        return {"items": items, "subtotal": subtotal, "coupon": self.coupon, "discount": discount,
                "total": round(subtotal - discount, 2)}

    @tool
    def search_products(self, query: str = "", category: Category | None = None,
                        max_price: float | None = None) -> list[dict[str, Any]]:
        """Search the catalogue by words in the name, category and price.

        Args:
            query: words that must appear in the product name (empty: any).
            category: only this category.
            max_price: only products at or below this price.

        Returns:
            matching products, each {"id", "name", "category", "price"}, cheapest first.
        """
        words = query.casefold().split()
        found = [p for p in self.products.values()
                 if all(w in p["name"].casefold() for w in words)
                 and (category is None or p["category"] == category)
                 and (max_price is None or p["price"] <= max_price)]
        return [{k: p[k] for k in ("id", "name", "category", "price")} for p in sorted(found, key=lambda p: p["price"])]

    @tool
    def get_product(self, product_id: str) -> dict[str, Any]:
        """Full details of one product, including stock and rating.

        Args:
            product_id: the product's id.
        """
        return dict(self._product(product_id))

    @tool
    def add_to_cart(self, product_id: str, quantity: Annotated[int, {"minimum": 1, "maximum": 99}] = 1) -> dict:
        """Add units of a product to the cart.

        Args:
            product_id: the product's id.
            quantity: how many units to add.

        Returns:
            the cart.
        """
        product = self._product(product_id)
        wanted = self.cart.get(product_id, 0) + quantity
        if wanted > product["stock"]:
            raise ValueError(f"only {product['stock']} of {product_id} in stock; the cart would hold {wanted}")
        self.cart[product_id] = wanted
        return self._summary()

    @tool
    def remove_from_cart(self, product_id: str) -> dict[str, Any]:
        """Remove a product from the cart.

        Args:
            product_id: the product's id.

        Returns:
            the cart.
        """
        if product_id not in self.cart:
            raise KeyError(f"{product_id!r} is not in the cart")
        del self.cart[product_id]
        return self._summary()

    @tool
    def view_cart(self) -> dict[str, Any]:
        """Show the cart: items, subtotal, coupon, discount and total."""
        return self._summary()

    @tool
    def apply_coupon(self, code: str) -> dict[str, Any]:
        """Apply a coupon code to the cart.

        Args:
            code: the coupon code.

        Returns:
            the cart.
        """
        coupon = COUPONS.get(code.strip().upper())
        if coupon is None:
            raise ValueError(f"coupon {code!r} does not exist")
        subtotal = self._summary()["subtotal"]
        if subtotal < coupon["min_subtotal"]:
            raise ValueError(f"coupon {code!r} needs a subtotal of at least {coupon['min_subtotal']:.2f}; "
                             f"the cart's is {subtotal:.2f}")
        self.coupon = code.strip().upper()
        return self._summary()

    @tool
    def checkout(self) -> dict[str, Any]:
        """Pay for the cart and place the order.

        Returns:
            the order: {"order_id", "items", "total"}.
        """
        summary = self._summary()
        if not self.cart:
            raise ValueError("the cart is empty")
        if summary["total"] > self.balance:
            raise ValueError(f"the total {summary['total']:.2f} exceeds your balance {self.balance:.2f}")
        for pid, quantity in self.cart.items():
            self.products[pid]["stock"] -= quantity
        self.balance = round(self.balance - summary["total"], 2)
        order = {"order_id": f"A{self._order_seq + len(self.orders)}", "items": dict(self.cart),
                 "coupon": self.coupon, "total": summary["total"]}
        self.orders.append(order)
        self.cart, self.coupon = {}, None
        return order

    @tool
    def get_balance(self) -> float:
        """Your account balance."""
        return self.balance

    def tools(self) -> list[Tool]:
        return [self.search_products, self.get_product, self.add_to_cart, self.remove_from_cart, self.view_cart,
                self.apply_coupon, self.checkout, self.get_balance]


_ADJECTIVES = ["Aurora", "Basalt", "Cedar", "Drift", "Ember", "Fjord", "Granite", "Harbor", "Indigo", "Juniper"]
_NOUNS = {"lamps": "lamp", "chairs": "chair", "mugs": "mug", "backpacks": "backpack", "headphones": "headphones"}


class ShopTasks(ToolFamily):
    """Buy the right product. Difficulty < 1/3: a named product; above: the cheapest product of a
    category that is in stock and rated 4+ (cheaper ones fail a check); from 2/3: also apply the
    coupon if the cart qualifies. Verified on the placed order, not on the calls."""

    family = "tools-shop"

    def generate(self, rng: np.random.Generator, difficulty: float) -> tuple[str, dict[str, Any]]:
        products: list[dict[str, Any]] = []
        for category in CATEGORIES:
            adjectives = rng.choice(_ADJECTIVES, size=4, replace=False)
            prices = np.sort(rng.choice(np.arange(500, 6000, 25), size=4, replace=False)) / 100
            for adjective, price in zip(adjectives, prices, strict=True):
                products.append({"id": f"p{len(products) + 1}", "name": f"{adjective} {_NOUNS[category]}",
                                 "category": category, "price": float(price), "stock": int(rng.integers(3, 20)),
                                 "rating": round(float(rng.uniform(4.0, 5.0)), 1)})
        category = str(rng.choice(CATEGORIES))
        in_category = [p for p in products if p["category"] == category]
        quantity = int(rng.integers(1, 4))
        kind = "named" if difficulty < 1 / 3 else ("cheapest" if difficulty < 2 / 3 else "coupon")
        failing = {"named": 0, "cheapest": int(rng.integers(0, 3)), "coupon": int(rng.integers(0, 2))}[kind]
        for product in in_category[:failing]:  # cheaper ones that do not qualify
            if rng.random() < 0.5:
                product["stock"] = 0
            else:
                product["rating"] = round(float(rng.uniform(2.0, 3.9)), 1)
        target = in_category[failing] if kind != "named" else products[int(rng.integers(len(products)))]
        subtotal = round(target["price"] * quantity, 2)
        payload = {"products": products, "balance": 500.0, "order_seq": int(rng.integers(1000, 10000)), "kind": kind,
                   "category": category, "quantity": quantity, "target": target["id"],
                   "coupon": kind == "coupon" and subtotal >= COUPONS["SAVE10"]["min_subtotal"]}
        if kind == "named":
            prompt = f"Buy {quantity} unit(s) of the '{target['name']}'. Answer with the order id."
        else:
            prompt = (f"Buy {quantity} unit(s) of the cheapest product in the '{category}' category that is in stock "
                      "and rated at least 4.0.")
            if kind == "coupon":
                prompt += " Apply the coupon SAVE10 if your cart qualifies for it (it needs a subtotal of 50.00)."
            prompt += " Answer with the order id."
        return prompt, payload

    def open(self, task: Task, ctx: EpisodeContext) -> ShopWorld:
        p = task.payload
        return ShopWorld(p["products"], balance=p["balance"], order_seq=p["order_seq"])

    def tools(self, world: ShopWorld) -> Sequence[Tool]:
        return world.tools()

    def verify(self, task: Task, world: ShopWorld, answer: str) -> Verdict:
        p = task.payload
        if len(world.orders) != 1:
            return Verdict(False, f"expected exactly one order, found {len(world.orders)}")
        order = world.orders[0]
        if order["items"] != {p["target"]: p["quantity"]}:
            return Verdict(False, "the order does not hold the right product and quantity")
        if bool(order["coupon"]) != p["coupon"]:
            return Verdict(False, "the coupon should have been applied" if p["coupon"] else "no coupon was due")
        if order["order_id"].casefold() not in answer.casefold():
            return Verdict(False, "the order is right but the answer does not give its id")
        return Verdict(True, "correct")

    def plan(self, task: Task, world: Any) -> list[str]:
        p = task.payload
        by_id = {q["id"]: q for q in p["products"]}
        target = by_id[p["target"]]
        if p["kind"] == "named":
            steps = [call_text("search_products", query=target["name"])]
        else:
            cheaper = sorted((q for q in p["products"] if q["category"] == p["category"]), key=lambda q: q["price"])
            checks = cheaper[: cheaper.index(target) + 1]
            steps = [call_text("search_products", category=p["category"]),
                     *(call_text("get_product", product_id=q["id"]) for q in checks)]
        steps.append(call_text("add_to_cart", product_id=target["id"], quantity=p["quantity"]))
        if p["coupon"]:
            steps.append(call_text("apply_coupon", code="SAVE10"))
        steps.append(call_text("checkout"))
        return [*steps, answer_text(f"A{p['order_seq']}")]
