"""Configuration of the web env's browser."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any

from selfgym.errors import ConfigError

from .confine import SiteOrigins, origin_of

__all__ = ["CHROMIUM_NAMES", "BrowserConfig", "find_chromium"]

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

# Flags for a quiet, offline browser. The dead proxy sends every request that is not to a loopback
# address (or an allowed origin) nowhere, so pages cannot reach the internet; with the site's
# origins given, loopback is proxied too except for those (``BrowserConfig.launch_args``).
BASE_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--proxy-server=http://127.0.0.1:9",
)


def find_chromium() -> str | None:
    """The first Chromium-family browser on ``PATH``, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass(frozen=True, kw_only=True)
class BrowserConfig:
    """How the web env runs its browser."""

    executable_path: str | None = field(default=None, metadata={
        "help": "Chromium binary. Default: the first of chromium/chromium-browser/google-chrome on PATH, "
                "else a Playwright-managed Chromium (`playwright install chromium`)."})
    headless: bool = field(default=True, metadata={"help": "Run without a window."})
    viewport_width: int = field(default=1280, metadata={"help": "Page width in CSS pixels (screenshots have it)."})
    viewport_height: int = field(default=720, metadata={"help": "Page height in CSS pixels."})
    action_timeout_s: float = field(default=2.0, metadata={
        "help": "How long an action waits for its element to be visible, enabled and not covered."})
    navigation_timeout_s: float = field(default=10.0, metadata={"help": "Limit for goto() and page loads."})
    hang_timeout_s: float = field(default=15.0, metadata={
        "help": "A browser call that takes longer than this means the page or browser hung: the episode "
                "ends truncated and the browser is restarted."})
    prewarm: bool = field(default=True, metadata={
        "help": "Prepare the next episode's fresh context in the background, so reset() does not wait for it."})
    prewarm_idle_s: float = field(default=0.02, metadata={
        "help": "Prepare it only once the agent has taken this long between two steps (it runs while the model "
                "thinks; steps sent back to back leave it to reset() instead of competing with them). 0: as soon "
                "as the episode's page is ready."})
    allowed_origins: tuple[str, ...] = field(default=(), metadata={
        "help": "Origins (scheme://host[:port]) besides the task's site that pages and goto() may reach."})
    extra_args: tuple[str, ...] = field(default=(), metadata={"help": "More Chromium command-line flags."})

    def __post_init__(self) -> None:
        if self.viewport_width < 100 or self.viewport_height < 100:
            raise ConfigError(f"viewport must be at least 100x100, got {self.viewport_width}x{self.viewport_height}")
        if self.prewarm_idle_s < 0:
            raise ConfigError(f"BrowserConfig.prewarm_idle_s must be >= 0, got {self.prewarm_idle_s}")
        for name in ("action_timeout_s", "navigation_timeout_s", "hang_timeout_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"BrowserConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.hang_timeout_s <= self.action_timeout_s:
            raise ConfigError(
                f"BrowserConfig.hang_timeout_s ({self.hang_timeout_s}) must exceed action_timeout_s "
                f"({self.action_timeout_s}), or a slow element would count as a hung browser")
        for origin in self.allowed_origins:
            if not origin.startswith(("http://", "https://")) or origin_of(origin) is None:
                raise ConfigError(f"allowed_origins entries look like 'https://host[:port]', got {origin!r}")

    @classmethod
    def coerce(cls, value: BrowserConfig | dict[str, Any] | None) -> BrowserConfig:
        """Accept a config, a dict of its fields (from a TOML run config) or None (defaults)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = set(value) - set(cls.__dataclass_fields__)
            if unknown:
                known = sorted(cls.__dataclass_fields__)
                raise ConfigError(f"unknown BrowserConfig keys {sorted(unknown)}; known: {known}")
            fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
            return cls(**fields)
        raise ConfigError(f"browser= takes a BrowserConfig or a dict, got {type(value).__name__}")

    def launch_args(self, *, site_origins: tuple[str, ...] = ()) -> list[str]:
        """Chromium's flags; with ``site_origins`` only those and ``allowed_origins`` bypass the dead proxy."""
        args = list(BASE_ARGS) + list(self.extra_args)
        if site_origins:
            args.append(f"--proxy-bypass-list={SiteOrigins.of((*site_origins, *self.allowed_origins)).proxy_bypass()}")
        elif self.allowed_origins:
            hosts = ";".join(urlsplit_host(o) for o in self.allowed_origins)
            args.append(f"--proxy-bypass-list={hosts}")
        return args


def urlsplit_host(origin: str) -> str:
    """``https://example.org:8443`` -> ``example.org:8443`` (a proxy-bypass entry)."""
    return origin.split("://", 1)[1].rstrip("/")
