"""Task mutation: new candidate tasks made from failed tasks by changing and composing *verified* tasks.

A small model (SmolLM2-135M) writes almost no valid Code-as-Task proposal, so the teacher can also
derive candidates mechanically from the tasks the student failed, in three kinds:

- ``easier``: the failed task made easier. A procedural task is regenerated from its family's
  ``Variant`` with small inputs (difficulty 0) and fewer tests (its edge cases kept); a task with
  ``assert`` tests keeps the shorter half of its tests.
- ``compose``: ``h(x...) = g(f(x...))`` for two procedural variants of different families whose
  types chain (``g`` takes one argument, annotated as ``f``'s return annotation). Expected values
  come from the trusted family references, and only from inputs where ``f``'s result lies inside
  what ``g``'s own input generator makes, so ``g`` never runs outside its domain.
- ``docstring``: a task re-rendered as a HumanEval problem: a stub whose docstring holds the
  description and ``>>>`` examples, in exactly the HumanEval prompt (``humaneval_prompt``).

Each candidate is a ``(Proposal, Task)`` pair that ``ProposalJudge`` screens like an LLM proposal:
the reference must pass the tests in the sandbox and each failing example must fail one; the text a
solver sees (``MutatedProposal.prompt()`` returns the task's own prompt) is decontaminated and
checked for duplicates; the solver's pass rate decides learnability. Failing examples are plausible
wrong answers: the components alone (compose), the result off by one, the parent's own failing
examples and the student's failed answer where they still fail the new tests. Code an LLM wrote (a
generated parent's reference, the student's answer) only ever runs in the sandbox; the code run
in-process is the families' own. A parent that is not procedural is mutated only once its
reference passes its own tests in the sandbox.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from selfgym.envs.code.datasets import humaneval_prompt
from selfgym.envs.code.families import FAMILIES, Inputs, Variant
from selfgym.envs.code.families.base import prompt_for
from selfgym.envs.code.verifier import test_kind, verify
from selfgym.errors import ActionError
from selfgym.seeds import derive_seed
from selfgym.types import Task

from .proposal import Proposal, ProposalLimits, proposal_task

__all__ = ["KINDS", "MutatedProposal", "MutationKind", "Mutator", "chains"]

MutationKind = Literal["easier", "compose", "docstring"]
KINDS: tuple[MutationKind, ...] = ("easier", "compose", "docstring")
EASIER_CASES = 4  # random cases of an easier procedural task (the family's tasks have 4 to 10)
COMPOSE_CASES = 6
DOMAIN_SAMPLES = 40  # draws per difficulty level that outline a variant's input domain

# Appended to a reference (renamed) in a failing example: its answer, off by one.
_OFF_BY_ONE = '''
def _off_by_one(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, (str, list, tuple)):
        return value[:-1] if value else value + type(value)("0" if isinstance(value, str) else [0])
    if isinstance(value, dict) and value:
        return dict(list(value.items())[:-1])
    return 0 if value is None else None
'''


@dataclass(frozen=True, kw_only=True)
class MutatedProposal(Proposal):
    """A proposal made by mutation; ``prompt()`` is the task's own text, so the judge screens what a solver sees."""

    text: str
    kind: MutationKind
    parents: tuple[str, ...]

    def prompt(self) -> str:
        return self.text


@dataclass(frozen=True)
class _Function:
    """What a mutation needs of a verified task: its function, description, reference and tests."""

    name: str
    params: str  # ``a: int, b: int`` as the reference writes them
    returns: str  # the return annotation ('' when there is none)
    doc: str
    reference: str
    tests: tuple[str, ...]  # assert statements
    failing: tuple[str, ...] = ()  # wrong answers to try (kept where the new tests catch them)

    @property
    def signature(self) -> str:
        return f"{self.name}({self.params})" + (f" -> {self.returns}" if self.returns else "")


def _assert(name: str, args: tuple, expected: Any) -> str:
    return f"assert {_call(name, args)} == {expected!r}"


def _call(name: str, args: tuple) -> str:
    return f"{name}({', '.join(repr(a) for a in args)})"


def _header(source: str, name: str) -> tuple[str, str]:
    """``(parameters, return annotation)`` of the function ``name`` defined in ``source``."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.unparse(node.args), ast.unparse(node.returns) if node.returns else ""
    raise ValueError(f"the reference does not define {name!r}")


def _variant(task: Task) -> Variant | None:
    """The family variant a procedural task was generated from (None for any other task)."""
    family, name = FAMILIES.get(task.family), task.payload.get("variant")
    if family is None or not task.source.startswith("procedural:"):
        return None
    return next((v for v in family.variants if v.name == name), None)


def _cases(variant: Variant, rng: np.random.Generator, difficulty: float, n: int) -> list[tuple[tuple, Any]]:
    """``n`` distinct random ``(args, expected)`` of ``variant`` (as its family draws them)."""
    inputs = Inputs(rng, difficulty)
    drawn: list[tuple] = []
    for _ in range(n * 4):
        args = tuple(variant.inputs(inputs))
        if args not in drawn:
            drawn.append(args)
        if len(drawn) == n:
            break
    return [(args, variant.function(*copy.deepcopy(args))) for args in drawn]


def _from_variant(variant: Variant, cases: Sequence[tuple[tuple, Any]]) -> _Function:
    params, returns = _header(variant.source, variant.name)
    return _Function(name=variant.name, params=params, returns=returns, doc=variant.doc, reference=variant.source,
                     tests=tuple(_assert(variant.name, args, out) for args, out in cases))


def _from_payload(task: Task) -> _Function | None:
    """A task with ``assert`` tests and a reference (teacher-made, MBPP), unverified."""
    payload = task.payload
    name, reference, tests = payload.get("entry_point"), payload.get("reference"), payload.get("tests")
    if not (isinstance(name, str) and isinstance(reference, str) and isinstance(tests, list) and tests
            and all(isinstance(t, str) for t in tests)):
        return None
    try:
        params, returns = _header(reference, name)
    except (SyntaxError, ValueError):
        return None
    doc = _stub_doc(payload.get("stub") or "")
    lines = task.prompt.splitlines()
    doc = doc or (lines[1] if len(lines) > 1 else task.prompt)
    failing = tuple(f for f in payload.get("failing_examples") or () if isinstance(f, str))
    return _Function(name=name, params=params, returns=returns, doc=" ".join(doc.split()), reference=reference,
                     tests=tuple(tests), failing=failing)


def _stub_doc(stub: str) -> str | None:
    try:
        body = ast.parse(stub).body
    except SyntaxError:
        return None
    return ast.get_docstring(body[0]) if body and isinstance(body[0], ast.FunctionDef) else None


def _doctest(test: str, name: str) -> tuple[str, str] | None:
    """``(call, expected)`` source of ``assert name(...) == expected`` (None for other asserts)."""
    try:
        node = ast.parse(test).body[0]
    except SyntaxError:
        return None
    if not (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1
            and isinstance(node.test.ops[0], ast.Eq) and isinstance(node.test.left, ast.Call)
            and isinstance(node.test.left.func, ast.Name) and node.test.left.func.id == name):
        return None
    return ast.unparse(node.test.left), ast.unparse(node.test.comparators[0])


def _domain_ok(value: Any, samples: Sequence[Any]) -> bool:
    """Whether ``value`` lies inside the values ``samples`` outline: same type, ints in their range,
    strings of their characters and lengths, containers of their lengths with elements inside."""
    same = [s for s in samples if type(s) is type(value)]
    if not same:
        return False
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return min(same) <= value <= max(same)
    if isinstance(value, str | list | tuple | dict):
        if not min(len(s) for s in same) <= len(value) <= max(len(s) for s in same):
            return False
        if isinstance(value, str):
            return set(value) <= {ch for s in same for ch in s}
        if isinstance(value, dict):
            return (_domain_ok(list(value), [list(s) for s in same])
                    and _domain_ok(list(value.values()), [list(s.values()) for s in same]))
        elements = [e for s in same for e in s]
        return all(_domain_ok(e, elements) for e in value)
    return value in same


_DOMAINS: dict[tuple[str, str], list[Any]] = {}


def _domain(family: str, variant: Variant) -> list[Any]:
    """Sample arguments of the one-argument ``variant`` (from a fixed seed, over every difficulty)."""
    key = (family, variant.name)
    if key not in _DOMAINS:
        rng = np.random.default_rng(0)
        values = [edge[0] for edge in variant.edges]
        for difficulty in (0.0, 0.5, 1.0):
            inputs = Inputs(rng, difficulty)
            values += [variant.inputs(inputs)[0] for _ in range(DOMAIN_SAMPLES)]
        _DOMAINS[key] = values
    return _DOMAINS[key]


def _one_param(variant: Variant) -> str | None:
    """The annotation of ``variant``'s parameter when it takes exactly one (None otherwise)."""
    node = ast.parse(variant.source).body[0]
    assert isinstance(node, ast.FunctionDef)
    args = node.args
    if len(args.args) != 1 or args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs:
        return None
    return ast.unparse(args.args[0].annotation) if args.args[0].annotation else None


def chains(f: Variant, g: Variant) -> bool:
    """Whether ``g(f(...))`` type-checks: ``g`` takes one argument annotated as ``f``'s return."""
    returns = _header(f.source, f.name)[1]
    return bool(returns) and _one_param(g) == returns and f.name != g.name


class Mutator:
    """Makes mutation candidates of failed tasks (see the module docstring).

    Args:
        sandbox: a started code sandbox, where generated references and students' answers run.
        known: tasks a composition may take its second component from (procedural, not held-out).
        family: family (and id prefix) of the candidate tasks.
        source: ``Task.source`` of the candidate tasks.
        limits: the bounds on tests and failing examples the candidates keep to.
        kinds: the kinds to make, in this order of preference.
        seed: with the iteration, fixes every random choice.
    """

    def __init__(self, sandbox: Any, *, known: Iterable[Task] = (), family: str = "generated",
                 source: str = "mutation", limits: ProposalLimits | None = None,
                 kinds: Sequence[MutationKind] = KINDS, seed: int = 0) -> None:
        self.sandbox = sandbox
        self.family = family
        self.source = source
        self.limits = limits or ProposalLimits()
        self.kinds = tuple(kinds)
        self.seed = seed
        self._verdicts: dict[str, bool] = {}  # task id -> its reference passes its own tests
        self.partners: dict[tuple[str, str], tuple[Task, Variant]] = {}
        for task in known:
            variant = _variant(task)
            if variant is not None and task.split != "heldout":
                self.partners.setdefault((task.family, variant.name), (task, variant))

    def candidates(self, failures: Sequence[tuple[Task, str | None]], *, iteration: int = 0) -> list[tuple[Proposal, Task]]:
        """Candidates for ``(failed task, the student's answer)`` pairs, interleaved: one of each
        parent's kinds in turn (a parent's kinds in a random order), so a short quota spreads over parents."""
        rng = np.random.default_rng(derive_seed(self.seed, "mutation", iteration))
        per_parent = []
        for task, answer in failures:
            if task.split == "heldout":
                continue
            order = [self.kinds[i] for i in rng.permutation(len(self.kinds))]
            made = [self.mutate(kind, task, answer=answer, rng=rng) for kind in order]
            per_parent.append([m for m in made if m is not None])
        return [c for turn in itertools.zip_longest(*per_parent) for c in turn if c is not None]

    def mutate(self, kind: MutationKind, parent: Task, *, answer: str | None = None,
               rng: np.random.Generator | None = None) -> tuple[Proposal, Task] | None:
        """One candidate of ``kind`` from ``parent`` (None when the kind does not apply to it)."""
        rng = rng if rng is not None else np.random.default_rng(derive_seed(self.seed, kind, parent.id))
        variant = _variant(parent)
        if variant is None and (kind == "compose" or not self._verified(parent)):
            return None
        if kind == "easier":
            return self._easier(parent, variant, answer, rng)
        if kind == "compose":
            assert variant is not None
            return self._compose(parent, variant, rng)
        return self._docstring(parent, variant, answer, rng)

    # ------------------------------------------------------------------ kinds
    def _easier(self, parent: Task, variant: Variant | None, answer: str | None,
                rng: np.random.Generator) -> tuple[Proposal, Task] | None:
        function: _Function | None
        if variant is not None:
            cases = _cases(variant, rng, 0.0, EASIER_CASES)
            edges = [(a, variant.function(*copy.deepcopy(a))) for a in variant.edges
                     if a not in [c[0] for c in cases]]
            fewer = max(self.limits.min_tests, len(parent.payload.get("tests") or ()) - 1)
            function = _from_variant(variant, (cases[:2] + edges + cases[2:])[:fewer])
            text = prompt_for(variant, cases[:2])
        else:
            function = _from_payload(parent)
            if function is None or max(self.limits.min_tests, len(function.tests) // 2) >= len(function.tests):
                return None  # too few tests to drop any
            tests = function.tests
            shortest = sorted(sorted(range(len(tests)), key=lambda i: len(tests[i]))[:max(self.limits.min_tests, len(tests) // 2)])
            function = dataclasses.replace(function, tests=tuple(tests[i] for i in shortest))
            text = Proposal(instruction=function.doc, entry_point=function.name, tests=function.tests,
                            reference=function.reference, failing=()).prompt()
        difficulty = parent.difficulty / 2
        return self._candidate("easier", (parent.id,), function, text, difficulty, answer=answer)

    def _compose(self, parent: Task, variant: Variant, rng: np.random.Generator) -> tuple[Proposal, Task] | None:
        pairs = [(variant, other, task) for (family, _), (task, other) in sorted(self.partners.items())
                 if family != parent.family and chains(variant, other)]
        pairs += [(other, variant, task) for (family, _), (task, other) in sorted(self.partners.items())
                  if family != parent.family and chains(other, variant)]
        if not pairs:
            return None
        f, g, partner = pairs[int(rng.integers(len(pairs)))]
        g_family = parent.family if g is variant else partner.family
        domain = _domain(g_family, g)
        cases: list[tuple[tuple, Any]] = []
        inputs = Inputs(rng, min(parent.difficulty, 0.5))
        for args in [*f.edges, *(tuple(f.inputs(inputs)) for _ in range(COMPOSE_CASES * 8))]:
            if len(cases) == COMPOSE_CASES or args in [c[0] for c in cases]:
                continue
            middle = f.function(*copy.deepcopy(args))
            if not _domain_ok(middle, domain):
                continue
            try:
                cases.append((args, g.function(copy.deepcopy(middle))))
            except Exception:  # noqa: BLE001 - the family reference refuses this value: not a case
                continue
        if len(cases) < max(self.limits.min_tests, 3):
            return None
        name = f"{g.name}_after_{f.name}"
        params, _ = _header(f.source, f.name)
        returns = _header(g.source, g.name)[1]
        arg_names = ", ".join(_param_names(f))
        first = _param_names(f)[0]
        reference = f"{f.source}\n\n{g.source}\n\ndef {name}({params}) -> {returns}:\n    return {g.name}({f.name}({arg_names}))\n"
        g_param = _param_names(g)[0]
        doc = (f"Apply two steps. First {f.name}({arg_names}): {f.doc} Then {g.name}({g_param}) with the first "
               f"step's result as {g_param}: {g.doc} Return the result of the second step.")
        function = _Function(name=name, params=params, returns=returns, doc=doc, reference=reference,
                             tests=tuple(_assert(name, args, out) for args, out in cases),
                             failing=(f"{f.source}\n\ndef {name}({params}):\n    return {f.name}({arg_names})\n",
                                      f"{g.source}\n\ndef {name}({params}):\n    return {g.name}({first})\n"))
        text = _listing(function.signature, doc, cases[-2:])
        parents = (parent.id, partner.id) if f is variant else (partner.id, parent.id)
        difficulty = min(1.0, max(parent.difficulty, partner.difficulty) + 0.25)
        return self._candidate("compose", parents, function, text, difficulty, anchor=parent.id)

    def _docstring(self, parent: Task, variant: Variant | None, answer: str | None,
                   rng: np.random.Generator) -> tuple[Proposal, Task] | None:
        function: _Function | None
        if variant is not None:
            n = 4 + int(round(6 * parent.difficulty))
            cases = _cases(variant, rng, parent.difficulty, n)
            edges = [(a, variant.function(*copy.deepcopy(a))) for a in variant.edges
                     if a not in [c[0] for c in cases]]
            function = _from_variant(variant, cases[:2] + edges + cases[2:])
            examples = [(_call(variant.name, a), repr(out)) for a, out in cases[:2]]
        else:
            function = _from_payload(parent)
            if function is None:
                return None
            examples = [e for e in (_doctest(t, function.name) for t in function.tests[:2]) if e is not None]
        if '"""' in function.doc or "\\" in function.doc:
            return None
        lines = [f"def {function.signature}:", f'    """{function.doc}', ""]
        for call, expected in examples:
            if "\\" in call + expected or '"""' in call + expected:
                continue
            lines += [f"    >>> {call}", f"    {expected}"]
        stub = "\n".join([*lines, '    """', ""])
        text = humaneval_prompt(function.name, stub)
        return self._candidate("docstring", (parent.id,), function, text, parent.difficulty, answer=answer,
                               stub=stub)

    # ------------------------------------------------------------------ helpers
    def _verified(self, task: Task) -> bool:
        """A non-procedural parent: its reference passes its own ``assert`` tests in the sandbox."""
        if task.id not in self._verdicts:
            function = _from_payload(task)
            self._verdicts[task.id] = (function is not None and test_kind(task.payload) == "assert"
                                       and verify(self.sandbox, function.reference, task.payload).passed)
        return self._verdicts[task.id]

    def _candidate(self, kind: MutationKind, parents: tuple[str, ...], function: _Function, text: str,
                   difficulty: float, *, answer: str | None = None, stub: str | None = None,
                   anchor: str | None = None) -> tuple[Proposal, Task] | None:
        tests = function.tests[: self.limits.max_tests]
        failing = self._failing(function, tests, answer)
        if len(tests) < self.limits.min_tests or len(failing) < self.limits.min_failing:
            return None
        proposal = MutatedProposal(instruction=function.doc, entry_point=function.name, tests=tests,
                                   reference=function.reference, failing=failing, text=text, kind=kind,
                                   parents=parents)
        task = proposal_task(proposal, family=self.family, difficulty=difficulty, parent_id=anchor or parents[0],
                             source=self.source, metadata={"method": f"mutation:{kind}", "parents": list(parents)})
        if stub is not None:
            task = dataclasses.replace(task, payload={**task.payload, "stub": stub})
        return proposal, task

    def _failing(self, function: _Function, tests: tuple[str, ...], answer: str | None) -> tuple[str, ...]:
        """Wrong answers for ``tests``: the reference off by one and, where they fail these tests in
        the sandbox, ``function.failing`` (the parent's wrong answers, a composition's components)
        and the student's answer."""
        name = function.name
        off = (f"{function.reference.rstrip()}\n\n_correct_{name} = {name}\n{_OFF_BY_ONE}\n\n"
               f"def {name}(*args, **kwargs):\n    return _off_by_one(_correct_{name}(*args, **kwargs))\n")
        wrong = [off]
        checked = list(function.failing)
        student = _student_code(answer, name)
        if student is not None:
            checked.append(student)
        payload = {"entry_point": name, "tests": list(tests)}
        for code in checked:
            if code not in wrong and not verify(self.sandbox, code, payload).passed:
                wrong.append(code)
        return tuple(wrong[: self.limits.max_failing])


def _param_names(variant: Variant) -> list[str]:
    node = ast.parse(variant.source).body[0]
    assert isinstance(node, ast.FunctionDef)
    return [a.arg for a in node.args.args]


def _listing(signature: str, doc: str, examples: Sequence[tuple[tuple, Any]]) -> str:
    """A task text in the families' format (``prompt_for``): what to write, the signature, examples."""
    name = signature.split("(", 1)[0]
    lines = [f"Write a Python function `{signature}`.", doc, "", "Examples:"]
    return "\n".join(lines + [f"    {_call(name, args)} == {out!r}" for args, out in examples])


def _student_code(answer: str | None, entry_point: str) -> str | None:
    """The student's failed answer as a program defining ``entry_point`` (None when it is not one)."""
    from selfgym.envs.code.extract import extract_code

    if not answer:
        return None
    try:
        code = extract_code(answer, entry_point=entry_point)
        tree = ast.parse(code)
    except (ActionError, SyntaxError, ValueError):
        return None
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    return code if entry_point in defined else None
