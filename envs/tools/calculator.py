"""Calculator tools and the ``tools-calc`` family: a chain of dependent arithmetic steps."""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from selfgym.types import Task

from .calls import answer_text, call_text
from .family import ToolFamily, Verdict
from .schema import Tool, tool

__all__ = ["CalcTasks", "calculate", "convert_units", "evaluate"]

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt, "abs": abs, "round": round, "min": min, "max": max, "log": math.log,
    "log10": math.log10, "exp": math.exp, "floor": math.floor, "ceil": math.ceil,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_MAX_EXPRESSION = 300
_MAX_MAGNITUDE = 1e300


def evaluate(expression: str) -> int | float:
    """Evaluate arithmetic safely (numbers, + - * / // % **, parentheses, a few math functions)."""
    if len(expression) > _MAX_EXPRESSION:
        raise ValueError(f"expression is {len(expression)} characters; the limit is {_MAX_EXPRESSION}")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not an arithmetic expression: {exc.msg}") from None
    return _eval(tree.body)


def _eval(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 1 and abs(left) > 1 and abs(right) * math.log10(abs(left)) > 300:
            raise ValueError("result too large (more than 300 digits)")
        result = _BINARY[type(node.op)](left, right)
        if isinstance(result, complex) or abs(result) > _MAX_MAGNITUDE:
            raise ValueError("result is not a real number of sensible size")
        return result
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
        if node.keywords:
            raise ValueError(f"{node.func.id}() takes positional arguments only")
        return _FUNCTIONS[node.func.id](*(_eval(a) for a in node.args))
    raise ValueError(f"unsupported syntax {ast.unparse(node)!r}; use numbers, + - * / // % **, "
                     f"parentheses, pi, e and {', '.join(_FUNCTIONS)}")


@tool
def calculate(expression: str) -> int | float:
    """Evaluate an arithmetic expression.

    Args:
        expression: e.g. "(12.5 + 3) * 4 / sqrt(2)"; supports + - * / // % **, parentheses, pi, e,
            sqrt, abs, round, min, max, log, log10, exp, floor, ceil.

    Returns:
        the value of the expression.
    """
    return evaluate(expression)


Unit = Literal["m", "km", "mi", "ft", "in", "cm", "kg", "g", "lb", "oz", "l", "ml", "gal", "c", "f", "k"]
_FACTORS = {  # to the base unit of each dimension
    "length": {"m": 1.0, "km": 1000.0, "mi": 1609.344, "ft": 0.3048, "in": 0.0254, "cm": 0.01},
    "mass": {"kg": 1.0, "g": 0.001, "lb": 0.45359237, "oz": 0.028349523125},
    "volume": {"l": 1.0, "ml": 0.001, "gal": 3.785411784},
}
_TEMPERATURE_TO_K = {"c": lambda v: v + 273.15, "f": lambda v: (v - 32) * 5 / 9 + 273.15, "k": lambda v: v}
_TEMPERATURE_FROM_K = {"c": lambda v: v - 273.15, "f": lambda v: (v - 273.15) * 9 / 5 + 32, "k": lambda v: v}


@tool
def convert_units(value: float, from_unit: Unit, to_unit: Unit) -> float:
    """Convert a quantity between units of length, mass, volume or temperature.

    Args:
        value: the quantity in ``from_unit``.
        from_unit: the unit of ``value``.
        to_unit: the unit to convert to (same dimension).

    Returns:
        the quantity in ``to_unit``.
    """
    if from_unit in _TEMPERATURE_TO_K or to_unit in _TEMPERATURE_TO_K:
        if not (from_unit in _TEMPERATURE_TO_K and to_unit in _TEMPERATURE_TO_K):
            raise ValueError(f"cannot convert {from_unit} to {to_unit}: only temperatures convert to temperatures")
        return _TEMPERATURE_FROM_K[to_unit](_TEMPERATURE_TO_K[from_unit](value))
    for dimension, factors in _FACTORS.items():
        if from_unit in factors:
            if to_unit not in factors:
                raise ValueError(f"cannot convert {from_unit} ({dimension}) to {to_unit}")
            return value * factors[from_unit] / factors[to_unit]
    raise ValueError(f"unknown unit {from_unit!r}")


_OPS = {"add": ("Add {k}.", "+"), "sub": ("Subtract {k}.", "-"), "mul": ("Multiply by {k}.", "*"),
        "div": ("Divide by {k}.", "/")}
_UNIT_PAIRS = (("mi", "km"), ("lb", "kg"), ("gal", "l"), ("ft", "m"), ("oz", "g"), ("f", "c"))
_UNIT_NAMES = {"mi": "miles", "km": "kilometres", "lb": "pounds", "kg": "kilograms", "gal": "gallons",
               "l": "litres", "ft": "feet", "m": "metres", "oz": "ounces", "g": "grams", "f": "degrees Fahrenheit",
               "c": "degrees Celsius"}
_FIRST_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:e[-+]?\d+)?", re.IGNORECASE)


class CalcTasks(ToolFamily):
    """A number transformed by 1-6 dependent steps (``difficulty`` sets the count; from 0.5 a
    unit conversion comes first). The answer is the final value rounded to 2 decimals."""

    family = "tools-calc"

    def generate(self, rng: np.random.Generator, difficulty: float) -> tuple[str, dict[str, Any]]:
        n_steps = 1 + int(round(difficulty * 5))
        start = int(rng.integers(10, 100))
        unit: list[str] | None = list(_UNIT_PAIRS[int(rng.integers(len(_UNIT_PAIRS)))]) if difficulty >= 0.5 else None
        steps: list[list[Any]] = []
        for _ in range(n_steps - (1 if unit else 0)):
            op = str(rng.choice(list(_OPS)))
            k = int(rng.integers(2, 10)) if op in ("mul", "div") else int(rng.integers(1, 100))
            steps.append([op, k])
        payload: dict[str, Any] = {"start": start, "unit": unit, "steps": steps}
        payload["answer"] = round(_run_chain(payload)[-1], 2)
        lines = [f"Start with {start} {_UNIT_NAMES[unit[0]]} and convert it to {_UNIT_NAMES[unit[1]]}."
                 if unit else f"Start with {start}."]
        lines += [_OPS[op][0].format(k=k) for op, k in steps]
        prompt = (" ".join(lines) + " Use the tools for each step. Answer with the final number rounded to "
                  "2 decimal places.")
        return prompt, payload

    def tools(self, world: Any) -> Sequence[Tool]:
        return [calculate, convert_units]

    def verify(self, task: Task, world: Any, answer: str) -> Verdict:
        match = _FIRST_NUMBER.search(answer)
        if match is None:
            return Verdict(False, "the answer holds no number")
        value = float(match.group().replace(",", ""))
        expected = float(task.payload["answer"])
        ok = abs(value - expected) <= 0.01 + 1e-9 * abs(expected)
        return Verdict(ok, "correct" if ok else f"{value:g} is not the result")

    def plan(self, task: Task, world: Any) -> list[str]:
        payload = task.payload
        values = _run_chain(payload)
        actions = []
        if payload["unit"]:
            src, dst = payload["unit"]
            actions.append(call_text("convert_units", value=payload["start"], from_unit=src, to_unit=dst))
        offset = 1 if payload["unit"] else 0
        for i, (op, k) in enumerate(payload["steps"]):
            actions.append(call_text("calculate", expression=f"{values[i + offset]!r} {_OPS[op][1]} {k}"))
        return [*actions, answer_text(f"{payload['answer']:.2f}")]


def _run_chain(payload: dict[str, Any]) -> list[float]:
    """``[start, after step 1, ...]``, computed exactly as the tools compute it."""
    value: float = payload["start"]
    values = [value]
    if payload["unit"]:
        value = convert_units(value=value, from_unit=payload["unit"][0], to_unit=payload["unit"][1])
        values.append(value)
    for op, k in payload["steps"]:
        value = evaluate(f"{value!r} {_OPS[op][1]} {k}")
        values.append(value)
    return values
