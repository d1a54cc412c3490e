"""Code-as-Task proposals: the format, its parser, sandbox validation, and the task it becomes.

A proposal is markdown with five sections (or the same keys as one JSON object)::

    ### Instruction
    Return the number of vowels in the string s.
    ### Entry point
    count_vowels
    ### Tests
    ```python
    assert count_vowels("apple") == 2
    assert count_vowels("") == 0
    ```
    ### Reference
    ```python
    def count_vowels(s: str) -> int:
        return sum(ch in "aeiou" for ch in s)
    ```
    ### Failing examples
    ```python
    def count_vowels(s: str) -> int:
        return len(s)
    ```

The tests are top-level ``assert`` statements (the code env's ``assert`` test kind); each failing
example is a wrong solution in its own code block. ``Entry point`` may be left out when the
reference defines one function the tests call. A proposal is **valid** when it parses, the
reference passes every test in the sandbox, and every failing example fails at least one.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from selfgym.errors import ActionError
from selfgym.types import Task

__all__ = [
    "PROPOSAL_FORMAT",
    "Proposal",
    "ProposalError",
    "ProposalLimits",
    "Validation",
    "parse_proposal",
    "proposal_task",
    "render_proposal",
    "task_payload",
    "validate_proposal",
]

SECTIONS = ("instruction", "entry point", "tests", "reference", "failing examples")
_KEYS = {"instruction": "instruction", "entry point": "entry_point", "entry_point": "entry_point",
         "tests": "tests", "test": "tests", "reference": "reference", "reference solution": "reference",
         "failing examples": "failing", "failing example": "failing", "failing_examples": "failing",
         "failing": "failing"}
_HEADING = re.compile(r"^[ \t]*#{1,4}[ \t]*([A-Za-z_ ]+?)[ \t]*:?[ \t]*$", re.MULTILINE)
_BLOCK = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)
_JSON_FENCE = re.compile(r"^```(?:json)?[ \t]*\n(.*)\n```$", re.DOTALL)

PROPOSAL_FORMAT = """Reply with a new task in exactly this format (markdown headings, python code blocks):

### Instruction
<one or two sentences saying what the function must do>
### Entry point
<the function name>
### Tests
```python
assert <name>(<arguments>) == <expected>
<2 to 8 assert lines>
```
### Reference
```python
<a correct solution: the complete function>
```
### Failing examples
```python
<a wrong solution that one of the tests must catch>
```
```python
<optionally another wrong solution>
```"""


class ProposalError(ActionError):
    """A proposal that cannot be used; the message says what to fix."""


@dataclass(frozen=True, kw_only=True)
class ProposalLimits:
    """What a well-formed proposal must have."""

    min_tests: int = field(default=2, metadata={"help": "fewest assert tests"})
    max_tests: int = field(default=20, metadata={"help": "most assert tests"})
    min_failing: int = field(default=1, metadata={"help": "fewest failing examples"})
    max_failing: int = field(default=5, metadata={"help": "most failing examples"})
    min_instruction_words: int = field(default=4, metadata={"help": "shortest instruction, in words"})


@dataclass(frozen=True, kw_only=True)
class Proposal:
    """A parsed Code-as-Task proposal."""

    instruction: str
    entry_point: str
    tests: tuple[str, ...]
    reference: str
    failing: tuple[str, ...]

    @property
    def signature(self) -> str:
        """``name(a, b)`` as the reference defines it."""
        for node in ast.parse(self.reference).body:
            if isinstance(node, ast.FunctionDef) and node.name == self.entry_point:
                returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
                return f"{node.name}({ast.unparse(node.args)}){returns}"
        raise ProposalError(f"the reference does not define `{self.entry_point}`")

    def prompt(self) -> str:
        """The task text a solver sees: the instruction, the signature and the first test as an example."""
        return (f"Write a Python function `{self.signature}`.\n{self.instruction}\n\nExample:\n"
                f"    {self.tests[0]}")


def parse_proposal(text: str, limits: ProposalLimits | None = None) -> Proposal:
    """Parse a proposal (markdown sections or one JSON object).

    Raises:
        ProposalError: the text is not a well-formed proposal (the message names what is wrong).
    """
    limits = limits or ProposalLimits()
    stripped = text.strip()
    fenced = _JSON_FENCE.match(stripped)
    if fenced and fenced.group(1).lstrip().startswith("{"):
        stripped = fenced.group(1).strip()
    raw = _from_json(stripped) if stripped.startswith("{") else _from_markdown(stripped)
    return _check(raw, limits)


def _from_json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProposalError(f"the proposal looks like JSON but does not parse: {exc.msg} "
                            f"(line {exc.lineno}, column {exc.colno})") from exc
    if not isinstance(data, dict):
        raise ProposalError("a JSON proposal must be one object with keys " + ", ".join(sorted(set(_KEYS.values()))))
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = _KEYS.get(key.lower().strip())
        if name is None:
            raise ProposalError(f"unknown key {key!r}; use instruction, entry_point, tests, reference, failing")
        out[name] = value
    if isinstance(out.get("tests"), list):
        out["tests"] = "\n".join(str(t) for t in out["tests"])
    if isinstance(out.get("failing"), str):
        out["failing"] = [out["failing"]]
    return out


def _from_markdown(text: str) -> dict[str, Any]:
    headings = list(_HEADING.finditer(text))
    if not headings:
        raise ProposalError("no sections found: start each part with a heading such as `### Instruction` "
                            f"(sections: {', '.join(SECTIONS)})")
    out: dict[str, Any] = {}
    for i, heading in enumerate(headings):
        name = _KEYS.get(heading.group(1).lower().strip())
        end = headings[i + 1].start() if i + 1 < len(headings) else len(text)
        body = text[heading.end():end].strip()
        if name is None:
            continue  # a heading inside text we do not use
        if name in out:
            raise ProposalError(f"section `{heading.group(1).strip()}` appears twice")
        blocks = [b.strip("\n") for b in _BLOCK.findall(body)]
        if name == "failing":
            out[name] = blocks
        elif name in ("tests", "reference"):
            out[name] = "\n".join(blocks) if blocks else body.strip("`\n")
        else:
            out[name] = body.strip().strip("`").strip()
    return out


def _check(raw: dict[str, Any], limits: ProposalLimits) -> Proposal:
    for name, title in (("instruction", "Instruction"), ("tests", "Tests"), ("reference", "Reference")):
        if not isinstance(raw.get(name), str) or not raw[name].strip():
            raise ProposalError(f"the `{title}` section is missing or empty")
    instruction = " ".join(raw["instruction"].split())
    if len(instruction.split()) < limits.min_instruction_words:
        raise ProposalError(f"the instruction is too short (at least {limits.min_instruction_words} words)")
    reference = _code(raw["reference"], "the reference")
    defined = [n.name for n in ast.parse(reference).body if isinstance(n, ast.FunctionDef)]
    tests = _tests(raw["tests"], limits)
    entry_point = _entry_point(str(raw.get("entry_point") or ""))
    if not entry_point:
        called = [name for name in defined if any(re.search(rf"\b{re.escape(name)}\s*\(", t) for t in tests)]
        if len(called) != 1:
            raise ProposalError("name the function in an `Entry point` section (the tests call "
                                f"{len(called)} of the functions the reference defines)")
        entry_point = called[0]
    if not entry_point.isidentifier():
        raise ProposalError(f"the entry point {entry_point!r} is not a Python name")
    if entry_point not in defined:
        raise ProposalError(f"the reference does not define `{entry_point}` (it defines: {', '.join(defined) or 'nothing'})")
    if not all(re.search(rf"\b{re.escape(entry_point)}\s*\(", t) for t in tests):
        raise ProposalError(f"every test must call `{entry_point}`")
    failing = raw.get("failing") or []
    if not isinstance(failing, list) or not all(isinstance(f, str) for f in failing):
        raise ProposalError("failing examples must be a list of code strings")
    failing = [_code(f, f"failing example {i + 1}") for i, f in enumerate(failing) if f.strip()]
    if not limits.min_failing <= len(failing) <= limits.max_failing:
        raise ProposalError(f"give {limits.min_failing} to {limits.max_failing} failing examples, each in its own "
                            f"```python block under `### Failing examples` (got {len(failing)})")
    for i, wrong in enumerate(failing, start=1):
        if ast.dump(ast.parse(wrong)) == ast.dump(ast.parse(reference)):
            raise ProposalError(f"failing example {i} is the reference itself")
    return Proposal(instruction=instruction, entry_point=entry_point, tests=tuple(tests), reference=reference,
                    failing=tuple(failing))


def _entry_point(text: str) -> str:
    """The function name in an ``Entry point`` section: ``name``, ``name()`` or ``def name(...):``."""
    text = text.strip().strip("`").strip()
    match = re.match(r"^(?:def\s+)?([A-Za-z_]\w*)\s*(?:\(.*)?$", text.split("\n")[0].strip())
    return match.group(1) if match else text


def _code(source: str, what: str) -> str:
    source = source.strip("\n")
    try:
        ast.parse(source)
    except SyntaxError as exc:
        raise ProposalError(f"{what} is not valid Python: {exc.msg} (line {exc.lineno})") from exc
    return source + "\n"


def _tests(source: str, limits: ProposalLimits) -> list[str]:
    source = source.strip("\n")
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ProposalError(f"the tests are not valid Python: {exc.msg} (line {exc.lineno})") from exc
    tests = []
    for node in tree.body:
        if not isinstance(node, ast.Assert):
            raise ProposalError(f"tests must be `assert` statements; line {node.lineno} is a {type(node).__name__}")
        tests.append(ast.get_source_segment(source, node) or ast.unparse(node))
    if not limits.min_tests <= len(tests) <= limits.max_tests:
        raise ProposalError(f"give {limits.min_tests} to {limits.max_tests} assert tests (got {len(tests)})")
    return tests


def render_proposal(proposal: Proposal) -> str:
    """The markdown text of ``proposal`` (``parse_proposal`` reads it back unchanged)."""
    failing = "\n".join(f"```python\n{code.rstrip()}\n```" for code in proposal.failing)
    tests = "\n".join(proposal.tests)
    return (f"### Instruction\n{proposal.instruction}\n### Entry point\n{proposal.entry_point}\n"
            f"### Tests\n```python\n{tests}\n```\n### Reference\n```python\n{proposal.reference.rstrip()}\n```\n"
            f"### Failing examples\n{failing}\n")


# ----------------------------------------------------------------------------- validation
@dataclass(frozen=True, kw_only=True)
class Validation:
    """The sandbox's verdict on a proposal: ``reason`` says why it is invalid (None when valid)."""

    valid: bool
    reason: str | None = None
    failing_caught: int = 0
    duration_s: float = 0.0


def validate_proposal(proposal: Proposal, sandbox: Any, verifier: Any = None) -> Validation:
    """Run the reference and every failing example against the tests in ``sandbox``.

    Valid when the reference passes every test and each failing example fails at least one.
    A broken sandbox raises ``SandboxError`` (not the proposal's fault).
    """
    import time

    from selfgym.envs.code.feedback import format_feedback
    from selfgym.envs.code.verifier import verify

    started = time.perf_counter()
    payload = task_payload(proposal)
    verdict = verify(sandbox, proposal.reference, payload, verifier)
    if not verdict.passed:
        return Validation(valid=False, reason="the reference fails its own tests: " + format_feedback(verdict),
                          duration_s=time.perf_counter() - started)
    for i, wrong in enumerate(proposal.failing, start=1):
        if verify(sandbox, wrong, payload, verifier).passed:
            return Validation(valid=False, failing_caught=i - 1, duration_s=time.perf_counter() - started,
                              reason=f"failing example {i} passes every test: the tests do not catch it")
    return Validation(valid=True, failing_caught=len(proposal.failing), duration_s=time.perf_counter() - started)


def task_payload(proposal: Proposal) -> dict[str, Any]:
    """The code-env payload: ``assert`` tests, entry point, stub and reference (``Code-v0`` plays it as is)."""
    return {
        "entry_point": proposal.entry_point,
        "tests": list(proposal.tests),
        "reference": proposal.reference,
        "stub": f"def {proposal.signature}:\n    \"\"\"{proposal.instruction}\"\"\"\n",
        "examples": [proposal.tests[0]],
        "failing_examples": list(proposal.failing),
    }


def proposal_task(proposal: Proposal, *, family: str = "generated", difficulty: float = 0.5,
                  parent_id: str | None = None, source: str = "teacher",
                  metadata: dict[str, Any] | None = None) -> Task:
    """The ``generated``-split task for a proposal; its id hashes the instruction and tests."""
    digest = hashlib.sha1("\n".join([proposal.instruction, *proposal.tests]).encode()).hexdigest()[:16]
    payload = task_payload(proposal)
    if metadata:
        payload["generator"] = dict(metadata)
    return Task(id=f"{family}/{digest}", family=family, prompt=proposal.prompt(), split="generated",
                payload=payload, difficulty=min(max(float(difficulty), 0.0), 1.0), source=source,
                parent_id=parent_id)

