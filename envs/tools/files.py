"""File tools confined to the episode's temp dir, and the ``tools-files`` family (a chain of clues)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from selfgym.types import Task

from .calls import answer_text, call_text
from .family import EpisodeContext, ToolFamily, Verdict
from .schema import Tool, tool

__all__ = ["FileTasks", "FileWorld"]

_MAX_READ = 20_000
_MAX_WRITE = 100_000
_MAX_FILES = 200


def _workspace_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """An OS error names its path relative to the workspace: the agent sees its files, not the host's layout."""

    @functools.wraps(fn)
    def wrapper(self: FileWorld, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except OSError as exc:
            if exc.filename is None:
                raise
            raise type(exc)(exc.errno, exc.strerror, self._shown(exc.filename)) from None

    return wrapper


class FileWorld:
    """A small file system rooted in one directory; every path is resolved inside it.

    Paths are relative to the root (a leading ``/`` means the root too); ``..`` and symbolic links
    that lead outside raise ``PermissionError`` (a link is followed before the check, so a link out
    of the root, or a dangling one whose target would lie outside, is never read or written
    through). Errors name paths relative to the root.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def load(self, files: dict[str, str]) -> None:
        for rel, content in files.items():
            path = self._resolve(rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")

    def _resolve(self, path: str) -> Path:
        if "\x00" in path:
            raise ValueError("path contains a NUL character")
        resolved = (self.root / path.strip().lstrip("/")).resolve()
        if not resolved.is_relative_to(self.root):
            raise PermissionError(f"{path!r} is outside the workspace; use paths like 'notes/a.txt'")
        return resolved

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() or "."

    def _shown(self, filename: str | bytes | int) -> str:
        path = Path(os.fsdecode(filename)) if not isinstance(filename, int) else None
        if path is not None and path.is_absolute() and path.is_relative_to(self.root):
            return self._rel(path)
        return "(outside the workspace)"

    @tool
    @_workspace_errors
    def list_dir(self, path: str = ".") -> list[str]:
        """List a directory (sub-directories end with '/').

        Args:
            path: the directory, relative to the workspace root.
        """
        target = self._resolve(path)
        if not target.is_dir():
            raise NotADirectoryError(f"{path!r} is not a directory")
        return sorted(f"{p.name}/" if p.is_dir() else p.name for p in target.iterdir())

    @tool
    @_workspace_errors
    def read_file(self, path: str) -> str:
        """Read a text file.

        Args:
            path: the file, relative to the workspace root.

        Returns:
            its content (at most 20000 characters).
        """
        target = self._resolve(path)
        if target.is_dir():
            raise IsADirectoryError(f"{path!r} is a directory; use list_dir")
        if not target.exists():
            raise FileNotFoundError(f"no file {path!r}")
        with target.open(encoding="utf-8", errors="replace") as fh:
            return fh.read(_MAX_READ)

    @tool
    @_workspace_errors
    def write_file(self, path: str, content: str) -> str:
        """Write a text file (created with its directories, or overwritten).

        Args:
            path: the file, relative to the workspace root.
            content: the new content.
        """
        if len(content) > _MAX_WRITE:
            raise ValueError(f"content is {len(content)} characters; the limit is {_MAX_WRITE}")
        target = self._resolve(path)
        if target.is_dir():
            raise IsADirectoryError(f"{path!r} is a directory")
        if not target.exists() and sum(len(f) for _, _, f in os.walk(self.root)) >= _MAX_FILES:
            raise OSError(f"the workspace holds {_MAX_FILES} files already")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        return f"wrote {len(content)} characters to {self._rel(target)}"

    @tool
    @_workspace_errors
    def delete_file(self, path: str) -> str:
        """Delete a file.

        Args:
            path: the file, relative to the workspace root.
        """
        target = self._resolve(path)
        if not target.is_file():
            raise FileNotFoundError(f"no file {path!r}")
        target.unlink()
        return f"deleted {self._rel(target)}"

    def tools(self) -> list[Tool]:
        return [self.list_dir, self.read_file, self.write_file, self.delete_file]


_DIRS = ("docs", "archive", "notes", "tmp", "projects/alpha", "projects/beta")
_WORDS = ("budget", "plan", "minutes", "draft", "summary", "backup", "todo", "report", "ideas", "log")
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class FileTasks(ToolFamily):
    """Follow a chain of clue files from ``start.txt`` to a code, write it to ``answer.txt`` and
    answer with it. ``difficulty`` sets the chain length (1-5 reads) and the number of decoy files."""

    family = "tools-files"

    def generate(self, rng: np.random.Generator, difficulty: float) -> tuple[str, dict[str, Any]]:
        hops = int(round(difficulty * 4))  # clue files after start.txt: 1-5 reads, then one write
        n_decoys = 2 + int(round(difficulty * 6))
        paths: list[str] = []
        while len(paths) < hops + n_decoys:
            path = f"{_DIRS[int(rng.integers(len(_DIRS)))]}/{_WORDS[int(rng.integers(len(_WORDS)))]}.txt"
            if path not in paths:
                paths.append(path)
        chain, decoys = ["start.txt", *paths[:hops]], paths[hops:]
        code = self._code(rng)
        files = {path: f"The next clue is in {chain[i + 1]}." for i, path in enumerate(chain[:-1])}
        files[chain[-1]] = f"The code is {code}."
        for path in decoys:
            files[path] = f"The code is {self._code(rng)}." if rng.random() < 0.5 else "Nothing to see here."
        payload = {"files": files, "chain": chain, "code": code, "target": "answer.txt"}
        prompt = ("Start by reading start.txt and follow the clues to a code. Write the code (and nothing else) "
                  "into answer.txt, then answer with the code.")
        return prompt, payload

    @staticmethod
    def _code(rng: np.random.Generator) -> str:
        return "".join(_ALPHABET[int(i)] for i in rng.integers(len(_ALPHABET), size=6))

    def open(self, task: Task, ctx: EpisodeContext) -> FileWorld:
        world = FileWorld(ctx.workdir / "workspace")
        world.root.mkdir()
        world.load(task.payload["files"])
        return world

    def tools(self, world: FileWorld) -> Sequence[Tool]:
        return world.tools()

    def verify(self, task: Task, world: FileWorld, answer: str) -> Verdict:
        code = task.payload["code"]
        target = world.root / task.payload["target"]
        if not target.is_file():
            return Verdict(False, f"{task.payload['target']} was not written")
        if target.read_text(encoding="utf-8", errors="replace").strip() != code:
            return Verdict(False, f"{task.payload['target']} does not hold the code")
        if code.casefold() not in answer.casefold():
            return Verdict(False, "the file is right but the answer does not give the code")
        return Verdict(True, "correct")

    def plan(self, task: Task, world: Any) -> list[str]:
        payload = task.payload
        reads = [call_text("read_file", path=p) for p in payload["chain"]]
        write = call_text("write_file", path=payload["target"], content=payload["code"])
        return [*reads, write, answer_text(payload["code"])]
