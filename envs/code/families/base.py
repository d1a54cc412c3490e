"""Procedural code-task families: a reference function per variant, hidden tests generated from it.

A family module declares variants with a decorator; the decorated function *is* the reference
solution (its source becomes the oracle, its outputs the expected values)::

    FAMILY = CodeFamily("arithmetic", "integer arithmetic")

    @FAMILY.variant(tier=0, doc="Return the sum of a and b.", inputs=lambda g: (g.int(), g.int()))
    def add(a: int, b: int) -> int:
        return a + b

``difficulty`` picks the tier (0: one-liners a 135M model can sometimes write, 1: a loop or a
condition, 2: an algorithm with traps) and scales input sizes and the number of hidden tests. Edge
cases (``edges=``) are always among the hidden tests and never shown as examples.
"""

from __future__ import annotations

import copy
import inspect
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from selfgym.envs.tasks import MixedTaskSource, ProceduralTaskSource

__all__ = ["CodeFamily", "Inputs", "MixedCodeTasks", "Variant", "prompt_for"]

_int = int  # ``Inputs.int`` shadows the builtin inside the class body

N_EXAMPLES = 2
LETTERS = "abcdefghijklmnopqrstuvwxyz"
WORDS = ("apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "mouse", "green", "light", "ocean",
         "pixel", "robot", "sugar", "table", "zebra", "amber", "delta", "eagle", "honey", "index", "joker")


class Inputs:
    """Random arguments, scaled by difficulty: numbers grow from about +-10 to +-1000, lists lengthen."""

    def __init__(self, rng: np.random.Generator, difficulty: float) -> None:
        self.rng = rng
        self.difficulty = difficulty
        self.magnitude = int(round(10 * 100 ** difficulty))

    def int(self, lo: _int | None = None, hi: _int | None = None) -> _int:
        lo = -self.magnitude if lo is None else lo
        hi = self.magnitude if hi is None else hi
        return int(self.rng.integers(lo, hi + 1))

    def nat(self, hi: _int | None = None) -> _int:
        return self.int(0, self.magnitude if hi is None else hi)

    def length(self, lo: _int = 0, hi: _int | None = None) -> _int:
        return self.int(lo, hi if hi is not None else 4 + int(8 * self.difficulty))

    def ints(self, lo: _int | None = None, hi: _int | None = None, *, n: _int | None = None,
             min_len: _int = 0) -> list[_int]:
        return [self.int(lo, hi) for _ in range(self.length(min_len) if n is None else n)]

    def word(self, lo: _int = 1, hi: _int = 8, letters: str = LETTERS) -> str:
        return "".join(self.choice(letters) for _ in range(self.int(lo, hi)))

    def words(self, lo: _int = 1, hi: _int | None = None) -> list[str]:
        return [self.choice(WORDS) for _ in range(self.length(lo, hi))]

    def sentence(self, lo: _int = 1, hi: _int | None = None) -> str:
        return " ".join(self.words(lo, hi))

    def choice(self, options: Sequence[Any]) -> Any:
        return options[int(self.rng.integers(len(options)))]

    def bool(self) -> bool:
        return bool(self.rng.integers(2))


@dataclass(frozen=True)
class Variant:
    """One kind of problem in a family: the reference function, its doc, tier and input generator."""

    function: Callable[..., Any]
    tier: int
    doc: str
    inputs: Callable[[Inputs], tuple]
    edges: tuple[tuple, ...] = ()

    @property
    def name(self) -> str:
        return self.function.__name__

    @property
    def source(self) -> str:
        """The reference solution's source, without the registering decorator."""
        lines = textwrap.dedent(inspect.getsource(self.function)).split("\n")
        start = next(i for i, line in enumerate(lines) if line.startswith("def "))
        return "\n".join(lines[start:]).rstrip() + "\n"

    @property
    def signature(self) -> str:
        """``name(a: int, b: int) -> int``, as written in the reference."""
        header = self.source.split(":\n", 1)[0]
        return header.removeprefix("def ").strip()


def _call_label(name: str, args: tuple) -> str:
    return f"{name}({', '.join(repr(a) for a in args)})"


def prompt_for(variant: Variant, examples: list[tuple[tuple, Any]]) -> str:
    """The task text: what to write, the signature, two examples."""
    lines = [f"Write a Python function `{variant.signature}`.", variant.doc, "", "Examples:"]
    lines += [f"    {_call_label(variant.name, args)} == {result!r}" for args, result in examples]
    return "\n".join(lines)


class CodeFamily(ProceduralTaskSource):
    """A family of function-writing tasks built from decorated reference functions."""

    def __init__(self, family: str, description: str) -> None:
        self.family = family
        self.description = description
        self.variants: list[Variant] = []
        super().__init__(name=family)

    def variant(self, *, tier: int, doc: str, inputs: Callable[[Inputs], tuple],
                edges: Sequence[tuple] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register the decorated function as a variant (it stays a plain function)."""
        if tier not in (0, 1, 2):
            raise ValueError(f"tier must be 0, 1 or 2, got {tier}")

        def register(function: Callable[..., Any]) -> Callable[..., Any]:
            self.variants.append(Variant(function, tier, doc, inputs, tuple(edges)))
            return function

        return register

    def tier_for(self, difficulty: float) -> int:
        wanted = min(2, int(difficulty * 3))
        tiers = {v.tier for v in self.variants}
        return max((t for t in tiers if t <= wanted), default=min(tiers))

    def generate(self, rng: np.random.Generator, difficulty: float) -> tuple[str, dict[str, Any]]:
        tier = self.tier_for(difficulty)
        pool = [v for v in self.variants if v.tier == tier]
        variant = pool[int(rng.integers(len(pool)))]
        inputs = Inputs(rng, difficulty)
        n_random = 4 + int(round(6 * difficulty))
        random_args: list[tuple] = []
        for _ in range(n_random * 4):  # distinct inputs; small ranges may repeat
            args = tuple(variant.inputs(inputs))
            if args not in random_args:
                random_args.append(args)
            if len(random_args) == n_random:
                break
        cases = [(args, variant.function(*copy.deepcopy(args))) for args in random_args]
        edges = [(args, variant.function(*copy.deepcopy(args))) for args in variant.edges if args not in random_args]
        tests = [{"args": repr(args), "expected": repr(result)} for args, result in cases[:N_EXAMPLES] + edges
                 + cases[N_EXAMPLES:]]
        header = f"def {variant.signature}:\n"
        payload = {
            "entry_point": variant.name,
            "tests": tests,
            "reference": variant.source,
            "stub": header + f'    """{variant.doc}"""\n',
            "examples": [_call_label(variant.name, args) for args, _ in cases[:N_EXAMPLES]],
            "variant": variant.name,
            "tier": tier,
        }
        return prompt_for(variant, cases[:N_EXAMPLES]), payload


MixedCodeTasks = MixedTaskSource  # the code families as one source
