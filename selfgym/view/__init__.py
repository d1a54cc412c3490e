"""``selfgym view``: a local web app to look inside run stores (read-only).

Pages: runs, a run's timeline, a filterable trajectory table, a trajectory turn by turn with its
token log-probabilities, two attempts compared, skills with their versions, the teacher's lineage
of generated tasks, and paired comparisons of evaluations. See ``selfgym.view.app``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:  # the app (FastAPI) loads on first use: the registry does not need it
    if name in __all__:
        from selfgym.view import app

        return getattr(app, name)
    raise AttributeError(name)
