"""Registers the web envs and task sources (imports nothing heavy: runs on ``import selfgym``)."""

from __future__ import annotations

import functools
import importlib.util

from selfgym.registry import register_env, register_task_source

from .families import family_by_name, make_task_source

__all__ = ["register"]

_ENTRY = "selfgym.envs.web.env:WebEnv"


def register() -> None:
    register_env("Web-v0", _ENTRY, max_episode_steps=30,
                 description="Shop, forms and forum tasks on local sites in headless Chromium (AXTree text).")
    register_env("WebShop-v0", _ENTRY, max_episode_steps=30, kwargs={"family": "shop"},
                 description="Local shop: search, filter, add to cart and check out the right product.")
    register_env("WebForms-v0", _ENTRY, max_episode_steps=25, kwargs={"family": "forms"},
                 description="Local hotel site: fill booking and account-settings forms exactly.")
    register_env("WebForum-v0", _ENTRY, max_episode_steps=25, kwargs={"family": "forum"},
                 description="Local forum: find facts in threads, answer them or post a reply.")
    register_task_source("web", make_task_source, description="The three bundled web sites' task families, mixed.")
    sources = [
        ("web-shop", "shop", "Shop tasks; difficulty grows the catalog and the goal (named, cheapest, best under $)."),
        ("web-forms", "forms", "Booking and settings forms; difficulty sets how many fields must change."),
        ("web-forum", "forum", "Forum questions and replies; difficulty grows the forum and the search."),
    ]
    if importlib.util.find_spec("miniwob") is not None:  # its pages come from the package (not imported here)
        register_env("MiniWoB-v0", _ENTRY, max_episode_steps=10, kwargs={"family": "miniwob"},
                     description="MiniWoB++ pages (from the miniwob package) driven by Playwright, page's own reward.")
        sources.append(("miniwob", "miniwob", "MiniWoB++ tasks with oracles (click-button, enter-text, ...)."))
    for name, family, help_text in sources:
        register_task_source(name, functools.partial(family_by_name, family), description=help_text)
