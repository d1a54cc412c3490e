"""Web task families: the bundled sites (shop, forms, forum) and MiniWoB++.

Families are looked up by name, importing only the one asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from selfgym.errors import ConfigError

__all__ = ["FAMILIES", "SITE_FAMILIES", "family_by_name", "make_task_source"]

FAMILIES: dict[str, str] = {
    "shop": "selfgym.envs.web.families.shop:ShopTasks",
    "forms": "selfgym.envs.web.families.forms:FormsTasks",
    "forum": "selfgym.envs.web.families.forum:ForumTasks",
    "miniwob": "selfgym.envs.web.families.miniwob:MiniWoBTasks",
}
SITE_FAMILIES = ("shop", "forms", "forum")


def family_by_name(name: str, **kwargs: Any) -> Any:
    """A new task family object (``WebTaskFamily`` and ``TaskSource``) by its name."""
    if name not in FAMILIES:
        raise ConfigError(f"unknown web task family {name!r}; choose from {sorted(FAMILIES)}")
    module, _, attr = FAMILIES[name].partition(":")
    return getattr(importlib.import_module(module), attr)(**kwargs)


def make_task_source(names: str | Sequence[str] | None = None) -> Any:
    """One family by name, or several mixed (default: the three bundled sites)."""
    from .base import MixedTasks

    if isinstance(names, str):
        return family_by_name(names)
    chosen = list(names) if names is not None else list(SITE_FAMILIES)
    if len(chosen) == 1:
        return family_by_name(chosen[0])
    return MixedTasks([family_by_name(n) for n in chosen], name="web:" + "+".join(chosen))
