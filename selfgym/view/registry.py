"""Where running viewers say what they serve, so ``selfgym report`` can link into them.

A ``selfgym view`` process writes one small JSON file (pid, base URL, its stores by URL name and
path) into a per-user folder outside every run directory: ``$XDG_RUNTIME_DIR/selfgym/viewers``,
else ``~/.cache/selfgym/viewers``. The file is removed when the viewer exits; a file whose pid is no
longer alive (a killed viewer) is ignored by readers and removed by the next viewer that starts.
Nothing here touches a store or a run directory. Light on purpose: no FastAPI import.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

__all__ = ["ViewerEntry", "find_viewer", "live_viewers", "register_viewer", "registry_dir", "run_links"]


def registry_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "selfgym" / "viewers"
    return Path.home() / ".cache" / "selfgym" / "viewers"


@dataclass(frozen=True)
class ViewerEntry:
    """A running viewer: ``stores`` maps its URL names (``/s/<name>/...``) to resolved store paths."""

    pid: int
    url: str
    stores: dict[str, str]


def _alive(pid: int) -> bool:
    if pid <= 1:  # 0 and negatives address process groups; 1 is init, never a viewer
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _entries(folder: Path) -> list[tuple[Path, ViewerEntry | None]]:
    out: list[tuple[Path, ViewerEntry | None]] = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            out.append((path, ViewerEntry(pid=int(data["pid"]), url=str(data["url"]).rstrip("/"),
                                          stores={str(k): str(v) for k, v in data["stores"].items()})))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            out.append((path, None))
    return out


def live_viewers() -> list[ViewerEntry]:
    """The registered viewers whose process is alive (stale and unreadable entries skipped)."""
    return [e for _, e in _entries(registry_dir()) if e is not None and _alive(e.pid)]


def register_viewer(url: str, stores: Mapping[str, str | Path]) -> Path:
    """Write this process's entry (stale entries of dead pids are removed first); return its path."""
    folder = registry_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path, entry in _entries(folder):
        if entry is not None and entry.pid != os.getpid() and not _alive(entry.pid):
            path.unlink(missing_ok=True)
    body = json.dumps({"pid": os.getpid(), "url": url.rstrip("/"),
                       "stores": {name: str(Path(p).resolve()) for name, p in stores.items()}})
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(body)
    target = folder / f"{os.getpid()}.json"
    os.replace(tmp, target)
    return target


def find_viewer(store_path: str | Path) -> tuple[ViewerEntry, str] | None:
    """A live viewer serving ``store_path`` and the name it serves it under, else None."""
    wanted = str(Path(store_path).resolve())
    for entry in live_viewers():
        for name, path in entry.stores.items():
            if path == wanted:
                return entry, name
    return None


def run_links(base_url: str, store: str, run_id: str) -> dict[str, str]:
    """Deep links into a viewer at ``base_url`` for one run: run page, its trajectories, its teacher."""
    base, rq = base_url.rstrip("/"), urlencode({"run": run_id})
    return {"run": f"{base}/s/{store}/run?{rq}", "trajectories": f"{base}/s/{store}/trajectories?{rq}",
            "teacher": f"{base}/s/{store}/teacher?{rq}"}
