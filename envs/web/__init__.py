"""Web environments: Playwright-driven Chromium on bundled local sites and MiniWoB++ pages.

``import selfgym`` registers the envs without importing Playwright; the classes load on first use::

    env = gymnasium.make("selfgym/WebShop-v0")
    observation, info = env.reset(seed=0)
    observation, reward, terminated, truncated, info = env.step('click(3)')
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Browser", "BrowserConfig", "SiteServer", "WebEnv", "find_chromium"]

_EXPORTS = {
    "Browser": "selfgym.envs.web.browser",
    "BrowserConfig": "selfgym.envs.web.config",
    "SiteServer": "selfgym.envs.web.server",
    "WebEnv": "selfgym.envs.web.env",
    "find_chromium": "selfgym.envs.web.config",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
