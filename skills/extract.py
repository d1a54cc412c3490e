"""Skill extraction: the prompt that asks for a reusable function, and the parser of the answer.

From a successful episode (the task and the code that passed), the extraction prompt asks the
policy for **one** general helper function with a docstring, plus a few ``assert`` tests, in two
fenced blocks. ``parse_candidate`` turns the answer into a ``Candidate`` or raises
``CandidateError`` with the reason (no function, two functions, no tests, tests that never call
it, a name that shadows a builtin...). Being strict here is cheap; the sandbox decides the rest.
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass

from selfgym.types import Task

__all__ = ["Candidate", "CandidateError", "extraction_prompt", "parse_candidate"]

_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)
MAX_CODE_CHARS = 4000

SYSTEM = ("You turn solved programming tasks into reusable helper functions for a library. You answer with "
          "exactly two ```python code blocks: the function, then its tests.")

EXAMPLE_ANSWER = '''```python
def count_chars_in(text, chars):
    """Count how many characters of text are in chars (case-insensitive)."""
    chars = chars.lower()
    return sum(1 for c in text.lower() if c in chars)
```
```python
assert count_chars_in("Hello", "aeiou") == 2
assert count_chars_in("xyz", "aeiou") == 0
```'''


class CandidateError(ValueError):
    """An extraction answer that cannot be a skill (the message says why)."""


@dataclass(frozen=True)
class Candidate:
    """A proposed skill before verification."""

    name: str
    description: str
    code: str
    signature: str
    tests: str


EXAMPLE_TASK = Task(id="example/vowels", family="example",
                    prompt="Write `count_vowels(s)` that returns the number of vowels in s.")
EXAMPLE_SOLUTION = 'def count_vowels(s):\n    return sum(1 for c in s.lower() if c in "aeiou")\n'


def _request(task: Task, solution: str, taken: str = "") -> str:
    return (f"Task: {task.prompt.strip()[:1500]}\nSolution:\n```python\n{solution.strip()[:MAX_CODE_CHARS]}\n```\n"
            "Write ONE general helper function (with a docstring) that would make similar tasks easy, then 2-4 "
            f"assert lines that test it, in a second ```python block.{taken}")


def extraction_prompt(task: Task, solution: str, *, existing: list[str] | None = None) -> list[dict[str, str]]:
    """The chat for one successful episode: a worked example as an earlier turn, then the task and
    the code that passed (small models follow a shown exchange better than a described format)."""
    taken = f"\nNames already in the library (pick another name): {', '.join(existing)}." if existing else ""
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": _request(EXAMPLE_TASK, EXAMPLE_SOLUTION)},
            {"role": "assistant", "content": EXAMPLE_ANSWER},
            {"role": "user", "content": _request(task, solution, taken)}]


def _split_blocks(text: str) -> tuple[str, str]:
    """The first block with a function, and every ``assert`` line of the answer's blocks."""
    blocks = [b.strip() for b in _FENCE.findall(text)]
    if not blocks:
        raise CandidateError("no ```python code block")
    code_block = next((b for b in blocks if re.search(r"^def ", b, re.MULTILINE)), blocks[0])
    code = "\n".join(line for line in code_block.splitlines() if not line.lstrip().startswith("assert "))
    tests = [line.strip() for b in blocks for line in b.splitlines() if line.lstrip().startswith("assert ")]
    return code.strip(), "\n".join(dict.fromkeys(tests))


def _parse(code: str) -> ast.Module:
    try:
        return ast.parse(code)
    except SyntaxError as exc:
        raise CandidateError(f"syntax error on line {exc.lineno}: {exc.msg}") from exc


def parse_candidate(text: str, *, fallback_description: str | None = None) -> Candidate:
    """The skill proposed in an extraction answer. Without a docstring the description is
    ``fallback_description`` (e.g. the first line of the task it came from), if given.

    Raises:
        CandidateError: the answer is not one documented function with tests that call it.
    """
    code, tests = _split_blocks(text)
    if len(code) > MAX_CODE_CHARS:
        raise CandidateError(f"the function is longer than {MAX_CODE_CHARS} characters")
    tree = _parse(code)
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    others = [n for n in tree.body if not isinstance(n, ast.FunctionDef | ast.Import | ast.ImportFrom)
              and not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    if len(functions) != 1:
        raise CandidateError(f"expected exactly one top-level function, found {len(functions)}")
    if others:
        raise CandidateError("only imports and one function may stand at the top level of a skill")
    fn = functions[0]
    if fn.name.startswith("_") or hasattr(builtins, fn.name):
        raise CandidateError(f"the name {fn.name!r} is private or shadows a builtin")
    test_tree = _parse(tests) if tests else None
    asserts = [n for n in test_tree.body if isinstance(n, ast.Assert)] if test_tree else []
    if not asserts:
        raise CandidateError("no assert tests")
    if not any(isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id == fn.name
               for a in asserts for c in ast.walk(a)):
        raise CandidateError(f"the tests never call {fn.name}")
    doc = ast.get_docstring(fn) or ""
    description = doc.strip().splitlines()[0] if doc.strip() else (fallback_description or "").strip()
    if not description:
        raise CandidateError(f"{fn.name} has no docstring")
    signature = f"{fn.name}({ast.unparse(fn.args)})"
    return Candidate(name=fn.name, description=description, code=code, signature=signature, tests=tests)
