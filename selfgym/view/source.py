"""The stores a viewer shows, opened read-only, and the errors a page reports instead of a traceback.

Every request opens its own SQLite connection with ``file:...?mode=ro`` and ``PRAGMA query_only``:
nothing the viewer does can write the store, take a write lock, checkpoint the WAL or migrate an
old schema, so a ``selfgym train`` writing the same store is never blocked by it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from selfgym.lease import LEASE_SUFFIX
from selfgym.store import STORE_FILENAME
from selfgym.store_schema import SCHEMA_VERSION

__all__ = ["Group", "StoreRef", "ViewError", "connect", "discover", "lease_held", "store_refs"]


class ViewError(Exception):
    """A request the viewer cannot answer: shown as an HTML page with ``status`` (always 4xx)."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


@dataclass(frozen=True)
class StoreRef:
    """One store the viewer was given: ``name`` is its URL segment, ``path`` the SQLite file."""

    name: str
    path: Path

    @property
    def run_dir(self) -> Path:
        return self.path.parent


def store_refs(paths: list[str | Path]) -> list[StoreRef]:
    """Name each run directory (or ``.sqlite`` file) by its folder, made unique with a suffix."""
    refs: list[StoreRef] = []
    taken: set[str] = set()
    for raw in paths:
        path = Path(raw)
        path = path if path.suffix == ".sqlite" else path / STORE_FILENAME
        base = "".join(c if c.isalnum() or c in "-_." else "_" for c in path.parent.resolve().name) or "run"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        refs.append(StoreRef(name=name, path=path))
    return refs


@dataclass(frozen=True)
class Group:
    """Run directories side by side in one folder (an ablation's variants, a benchmark's methods):
    ``stores`` are their store names in order, the reference (``full`` where there is one) first."""

    name: str
    path: Path
    stores: tuple[str, ...]
    variants: tuple[str, ...]  # the run directories' folder names, in the order of ``stores``


MAX_DEPTH = 3  # runs/ -> methods/ -> <budget>-seed<N>/ -> <method>/ holds the store


def _run_dirs_below(folder: Path, depth: int = 1) -> list[Path]:
    """Run directories (holding a store) under ``folder``, at most ``MAX_DEPTH`` levels down, sorted."""
    out: list[Path] = []
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return out
    for child in children:
        if (child / STORE_FILENAME).is_file():
            out.append(child)
        elif depth < MAX_DEPTH:
            out += _run_dirs_below(child, depth + 1)
    return out


def _variant_order(folder: Path, names: list[str]) -> list[str]:
    """``ablation.json``'s order where the folder has one, else ``full`` (then ``base``) first, the rest sorted."""
    try:
        listed = [row["variant"] for row in json.loads((folder / "ablation.json").read_text())]
    except (OSError, ValueError, TypeError, KeyError):
        listed = []
    rank = {name: i for i, name in enumerate(listed)}
    return sorted(names, key=lambda n: (n not in rank, rank.get(n, 0), n != "full", n != "base", n))


def discover(paths: Sequence[str | Path]) -> tuple[list[StoreRef], list[Group]]:
    """The stores to show and the groups among them.

    A run directory or ``.sqlite`` file is shown as itself (also when it does not exist: its pages say
    so). A folder without a store (an ablation folder, ``runs/methods/<budget>-seed<N>``, ``runs/``)
    is searched for run directories; each folder among them holding two or more is a ``Group``.
    """
    expanded: list[Path] = []
    for raw in paths:
        path = Path(raw)
        found = [] if path.suffix == ".sqlite" or (path / STORE_FILENAME).exists() or not path.is_dir() \
            else _run_dirs_below(path)
        expanded += found or [path]
    refs = store_refs(list(expanded))
    by_parent: dict[Path, dict[str, str]] = {}
    for ref in refs:
        by_parent.setdefault(ref.run_dir.resolve().parent, {})[ref.run_dir.name] = ref.name
    groups, taken = [], set()
    for folder, members in by_parent.items():
        if len(members) < 2:
            continue
        name, n = folder.name or "runs", 1
        while name in taken:
            n += 1
            name = f"{folder.name}-{n}"
        taken.add(name)
        order = _variant_order(folder, list(members))
        groups.append(Group(name=name, path=folder, stores=tuple(members[v] for v in order), variants=tuple(order)))
    return refs, groups


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() if "meta" in tables else None
    if row is None or not str(row[0]).isdigit():
        shown = ", ".join(sorted(tables)[:5]) or "none"
        raise ViewError(422, "Not a selfgym store", f"{path} is a SQLite database but not a selfgym store "
                        f"(tables: {shown}). Pass a run directory written by selfgym.")
    version = int(row[0])
    if version < SCHEMA_VERSION:
        raise ViewError(409, "Store of an older schema", f"{path} was written with store schema v{version}; the "
                        f"viewer reads schema v{SCHEMA_VERSION} and never migrates (it only reads). Open the run "
                        "with selfgym once (for example: selfgym report RUN_DIR), which migrates the store, then "
                        "reload this page.")
    if version > SCHEMA_VERSION:
        raise ViewError(409, "Store of a newer schema", f"{path} was written with store schema v{version}; this "
                        f"selfgym reads schema v{SCHEMA_VERSION}. Upgrade selfgym to view it.")


@contextlib.contextmanager
def connect(ref: StoreRef) -> Iterator[sqlite3.Connection]:
    """A read-only connection to ``ref``'s store, checked; closed on exit.

    Raises:
        ViewError: the file is missing (404), not a selfgym store or damaged (422), or of another
            schema version (409).
    """
    if not ref.path.is_file():
        raise ViewError(404, "No store", f"{ref.path} does not exist. Pass a run directory written by selfgym "
                        f"(it holds {STORE_FILENAME}).")
    conn = sqlite3.connect(f"file:{quote(str(ref.path.resolve()))}?mode=ro", uri=True, timeout=10,
                           check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA query_only=1")
        try:
            _check_schema(conn, ref.path)
        except sqlite3.DatabaseError as exc:
            raise _damaged(ref.path, exc) from None
        try:
            yield conn
        except sqlite3.DatabaseError as exc:
            if type(exc) is not sqlite3.DatabaseError:  # a bad query is a bug, not the file's fault
                raise
            raise _damaged(ref.path, exc) from None
    finally:
        conn.close()


def _damaged(path: Path, exc: sqlite3.DatabaseError) -> ViewError:
    return ViewError(422, "Damaged store", f"{path} is damaged or not a SQLite database ({exc}). Move it away "
                     "or pass another run directory.")


def lease_held(run_dir: Path, run_id: str) -> bool | None:
    """Whether a live process holds the run's write lease, tested without taking it (``F_GETLK``).

    None where the test is not possible. A lease held by this very process reads as free (POSIX
    locks never conflict within a process).
    """
    path = run_dir / (run_id.replace(os.sep, "_") + LEASE_SUFFIX)
    if not path.is_file():
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        # struct flock on Linux: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid
        query = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
        return struct.unpack("hhqqi4x", answer)[0] != fcntl.F_UNLCK
    except OSError:
        return None
    finally:
        os.close(fd)
