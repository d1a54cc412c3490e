"""What a web episode's browser may reach: the task's own origins, and nothing else.

``SiteOrigins`` is the rule: the site server's origin (the bundled sites and MiniWoB++ pages) plus
``BrowserConfig.allowed_origins``. It is applied three times:

* ``goto`` checks its URL before the browser is touched (``actions.resolve``): a foreign address
  is an ``Error:`` in the observation.
* Every context routes through ``block_foreign``: each request to another origin (navigation,
  frame, subresource, fetch/XHR, beacon, the first page of a popup) is aborted with
  ``net::ERR_BLOCKED_BY_CLIENT``, and each WebSocket to another origin is closed before it
  connects. Allowed requests are matched by the Playwright driver and never wait for Python.
* At launch, ``proxy_bypass`` takes loopback out of Chromium's implicit proxy bypass: only these
  origins' host:port pairs are reached directly, every other address goes to the dead proxy. This
  catches what routing does not see: Playwright follows an allowed request's redirect without
  routing its target.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["SiteOrigins", "origin_of"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_SOCKET_SCHEMES = {"http": "ws", "https": "wss"}


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url`` as browsers write it (lower case, no default port), or None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # a port that is not a number, an unclosed IPv6 bracket
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != _DEFAULT_PORTS[scheme] else "")


@dataclass(frozen=True)
class SiteOrigins:
    """The origins an episode's pages may reach (``http(s)://host[:port]``, normalised)."""

    origins: tuple[str, ...]

    @classmethod
    def of(cls, origins: Iterable[str]) -> SiteOrigins:
        found = []
        for origin in origins:
            normal = origin_of(origin)
            if normal is None or not normal.startswith("http"):
                raise ValueError(f"not an http(s) origin: {origin!r}")
            if normal not in found:
                found.append(normal)
        return cls(tuple(found))

    def allows(self, url: str) -> bool:
        """Whether ``url`` is on one of the origins (a WebSocket URL counts as its http(s) origin)."""
        origin = origin_of(url)
        if origin is None:
            return False
        scheme, rest = origin.split("://", 1)
        scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
        return f"{scheme}://{rest}" in self.origins

    def foreign_requests(self) -> re.Pattern[str]:
        """URLs of requests to block: all but these origins and in-page schemes (data:, blob:, about:)."""
        return _anything_but(("data:", "blob:", "about:"), self.origins)

    def foreign_sockets(self) -> re.Pattern[str]:
        """WebSocket URLs to close: all but ``ws(s)://`` on these origins."""
        sockets = [_SOCKET_SCHEMES[o.split(":", 1)[0]] + o[o.index(":"):] for o in self.origins]
        return _anything_but((), sockets)

    def proxy_bypass(self) -> str:
        """Chromium's ``--proxy-bypass-list``: these host:port pairs and no implicit loopback."""
        return ";".join(["<-loopback>", *(_host_port(o) for o in self.origins)])


def _anything_but(prefixes: Iterable[str], origins: Iterable[str]) -> re.Pattern[str]:
    # One regex, matched by the Playwright driver itself: a request it does not match is continued
    # there, without a round trip to this process. Written for JavaScript's regex syntax too.
    kept = [re.escape(p) for p in prefixes] + [re.escape(o) + r"(?:[/?#]|$)" for o in origins]
    return re.compile(f"^(?!{'|'.join(kept)})" if kept else "^")


def _host_port(origin: str) -> str:
    scheme, rest = origin.split("://", 1)
    return rest if ":" in rest.rsplit("]", 1)[-1] else f"{rest}:{_DEFAULT_PORTS[scheme]}"


async def block_foreign(context: Any, origins: SiteOrigins) -> None:
    """Route ``context`` (a Playwright async ``BrowserContext``) so it reaches ``origins`` only."""

    async def abort(route: Any) -> None:
        try:
            await route.abort("blockedbyclient")
        except Exception:  # noqa: BLE001 - the page closed meanwhile: nothing left to block
            pass

    async def close(socket: Any) -> None:
        try:
            await socket.close(code=1008, reason="not the task's site")
        except Exception:  # noqa: BLE001 - as above
            pass

    await context.route(origins.foreign_requests(), abort)
    await context.route_web_socket(origins.foreign_sockets(), close)
