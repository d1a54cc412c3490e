"""The web envs from an attacker's side: the browser reaches the task's own site and nothing else.

A "foreign" loopback HTTP service on a random port stands for what runs beside a training job
(an inference server, a dashboard, another env's server): it records every request it gets and
serves a secret with a permissive CORS header, so any read or request that gets through shows.
The attacks go through ``reset`` / ``step``: ``goto`` to it, a redirect from an allowed origin,
and pages of the task's site that frame it, fetch it, open it in a popup, navigate to it or open a
WebSocket to it (test pages added to the site server, as a hostile page of a site would be).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import gymnasium
import pytest

import selfgym  # noqa: F401 - registers the envs
from selfgym.envs.web.actions import WebAction, resolve
from selfgym.envs.web.axtree import AXTree
from selfgym.envs.web.config import BrowserConfig, find_chromium
from selfgym.envs.web.confine import SiteOrigins, origin_of
from selfgym.envs.web.families import family_by_name
from selfgym.errors import ActionError


def needs_browser(test: Any) -> Any:
    test = pytest.mark.browser(test)
    return pytest.mark.skipif(find_chromium() is None, reason="no chromium on PATH (apt-get install chromium)")(test)

SECRET = "FOREIGN-SECRET-4711"


class Service:
    """A loopback HTTP server on a free port that logs requests; ``routes`` maps a path to (status, headers, body)."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], str]]) -> None:
        self.requests: list[str] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                service.requests.append(self.path)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, body = routes.get(self.path, routes["*"])
                data = body.encode()
                self.send_response(status)
                for name, value in {"Content-Type": "text/html", "Access-Control-Allow-Origin": "*",
                                    "Content-Length": str(len(data)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_OPTIONS = do_GET  # noqa: N815 - a beacon POSTs, a CORS preflight asks with OPTIONS

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def foreign() -> Iterator[Service]:
    service = Service({"*": (200, {}, f"<title>Foreign</title><h1>{SECRET}</h1>")})
    yield service
    service.close()


@pytest.fixture(scope="module")
def partner(foreign: Service) -> Iterator[Service]:
    """An origin the task lists in ``allowed_origins``, whose /hop redirects to the foreign service."""
    service = Service({"/hop": (302, {"Location": foreign.origin + "/after-redirect"}, ""),
                       "*": (200, {}, "<title>Partner</title><h1>Partner page</h1>")})
    yield service
    service.close()


def attack_pages(foreign: str) -> dict[str, str]:
    ws = foreign.replace("http://", "ws://")
    script = "<script>const out = document.getElementById('out');</script>"
    return {
        "frame.html": f'<h1>Frame page</h1><iframe title="inner" src="{foreign}/frame"></iframe>',
        "subresources.html": (f'<h1>Subresource page</h1><img alt="pic" src="{foreign}/img">'
                              f'<link rel="stylesheet" href="{foreign}/css"><script src="{foreign}/js"></script>'),
        "fetch.html": (f'<h1>Fetch page</h1><p id="out">waiting</p>{script}<script>'
                       f'fetch("{foreign}/fetch").then(r => r.text()).then(t => out.textContent = "got " + t, '
                       'e => out.textContent = "fetch failed: " + e);</script>'),
        "xhr.html": (f'<h1>XHR page</h1><p id="out">waiting</p>{script}<script>const x = new XMLHttpRequest();'
                     f'x.open("GET", "{foreign}/xhr"); x.onload = () => out.textContent = "got " + x.responseText;'
                     'x.onerror = () => out.textContent = "xhr failed"; x.send();</script>'),
        "socket.html": (f'<h1>Socket page</h1><p id="out">waiting</p>{script}<script>'
                        f'const s = new WebSocket("{ws}/socket"); s.onopen = () => out.textContent = "socket open";'
                        'const shut = () => out.textContent = "socket closed"; s.onerror = shut; s.onclose = shut;'
                        '</script>'),
        "popup.html": (f'<h1>Popup page</h1><button onclick="window.open(\'{foreign}/popup\')">Open</button>'),
        "navigate.html": (f'<h1>Navigate page</h1><button onclick="location.href = \'{foreign}/navigate\'">Go</button>'),
        "beacon.html": (f'<h1>Beacon page</h1><script>navigator.sendBeacon("{foreign}/beacon", "x");</script>'),
    }


@pytest.fixture(scope="module")
def env(foreign: Service, partner: Service) -> Iterator[gymnasium.Env]:
    made = gymnasium.make("selfgym/WebShop-v0", browser={"allowed_origins": [partner.origin]})
    made.reset(options={"task": family_by_name("shop").make(1, 0.0)})
    for name, html in attack_pages(foreign.origin).items():
        made.unwrapped.server.site_files[name] = f"<!doctype html><title>{name}</title>{html}".encode()
    yield made
    made.close()


@pytest.fixture
def episode(env: gymnasium.Env, foreign: Service) -> gymnasium.Env:
    env.reset(options={"task": family_by_name("shop").make(1, 0.0)})
    foreign.requests.clear()
    return env


def step(env: gymnasium.Env, action: str) -> tuple[str, dict[str, Any]]:
    start = time.monotonic()
    observation, _, terminated, truncated, info = env.step(action)
    assert time.monotonic() - start < 8, f"{action} took {time.monotonic() - start:.1f} s"
    assert not terminated and not truncated, observation
    return observation, info


def settled(env: gymnasium.Env, marker: str, waiting: str = "waiting") -> str:
    """The observation once the page's script has written its outcome (``waiting`` is gone)."""
    deadline = time.monotonic() + 4
    observation = env.unwrapped.observe()
    while waiting in observation and time.monotonic() < deadline:
        time.sleep(0.1)
        observation = env.unwrapped.observe()
    assert marker in observation, observation
    return observation


def confined(observation: str, foreign: Service, wait_s: float = 0.3) -> None:
    time.sleep(wait_s)  # a request the page sent late would still arrive
    assert SECRET not in observation, observation
    assert foreign.requests == [], f"the foreign service was reached: {foreign.requests}\n{observation}"


@needs_browser
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_goto_to_another_loopback_port_is_refused(episode, foreign: Service, host: str) -> None:
    url = f"http://{host}:{foreign.port}/"
    observation, info = step(episode, f'goto("{url}")')
    assert f"goto: {url} is not allowed" in (info["action_error"] or ""), observation
    assert "URL: /shop/" in observation
    confined(observation, foreign)


@needs_browser
def test_goto_to_the_task_site_and_listed_origins_still_works(episode, partner: Service) -> None:
    observation, info = step(episode, 'goto("/forum/")')
    assert info["action_error"] is None and "URL: /forum/" in observation, observation
    observation, info = step(episode, 'goto("/shop")')  # the site server redirects to /shop/
    assert info["action_error"] is None and "URL: /shop/" in observation, observation
    observation, info = step(episode, f'goto("{partner.origin}/page")')
    assert info["action_error"] is None and "Partner page" in observation, observation


@needs_browser
def test_a_redirect_from_a_listed_origin_to_a_foreign_one_is_blocked(episode, foreign: Service,
                                                                      partner: Service) -> None:
    observation, info = step(episode, f'goto("{partner.origin}/hop")')
    assert "/hop" in partner.requests
    assert "net::ERR_" in (info["action_error"] or "") and "Note: this page is not on the task's site" in observation
    confined(observation, foreign)


@needs_browser
@pytest.mark.parametrize("page, marker", [
    ("frame.html", "Frame page"),
    ("subresources.html", "Subresource page"),
    ("beacon.html", "Beacon page"),
])
def test_a_site_page_cannot_load_foreign_content(episode, foreign: Service, page: str, marker: str) -> None:
    observation, info = step(episode, f'goto("/static/{page}")')
    assert info["action_error"] is None and marker in observation, observation
    confined(episode.unwrapped.observe(), foreign)


@needs_browser
@pytest.mark.parametrize("page, outcome", [
    ("fetch.html", "fetch failed"),
    ("xhr.html", "xhr failed"),
    ("socket.html", "socket closed"),
])
def test_a_site_page_script_cannot_reach_a_foreign_service(episode, foreign: Service, page: str,
                                                           outcome: str) -> None:
    step(episode, f'goto("/static/{page}")')
    confined(settled(episode, outcome), foreign)


@needs_browser
@pytest.mark.parametrize("page, button, off_site", [("popup.html", "Open", False), ("navigate.html", "Go", True)])
def test_a_click_that_opens_a_foreign_page_is_blocked_and_does_not_hang(episode, foreign: Service, page: str,
                                                                        button: str, off_site: bool) -> None:
    step(episode, f'goto("/static/{page}")')
    target = episode.unwrapped.tree.find("button", button)
    observation, _ = step(episode, f"click({target.id})")
    assert ('Note: this page is not on the task\'s site' in observation) == off_site, observation
    assert ("ERR_BLOCKED_BY_CLIENT" in observation) == off_site, observation
    confined(observation, foreign)
    observation, info = step(episode, 'goto("/shop/")')  # the episode goes on
    assert info["action_error"] is None and "URL: /shop/" in observation, observation


SITE = "http://127.0.0.1:5000"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:5001/",                   # another loopback port
    "http://localhost:5000/",                   # the same server by another name is another origin
    "http://127.0.0.1:5000@127.0.0.1:8265/",    # userinfo: the host is the part after @
    "http://127.0.0.1:5000.evil.test/",
    "//127.0.0.1:8265/jobs",                    # scheme-relative
    "https://127.0.0.1:5000/",                  # other scheme
    "http://[::1]:5000/",
    "http://2130706433:5000/",                  # 127.0.0.1 as a number
    "view-source:http://127.0.0.1:5000/",
    "file:///etc/passwd",
    "javascript:fetch('http://127.0.0.1:8265')",
])
def test_goto_refuses_every_address_but_the_task_site(url: str) -> None:
    with pytest.raises(ActionError, match="not allowed"):
        resolve(WebAction("goto", text=url), AXTree([]), current_url=SITE + "/shop/", base_url=SITE)
    assert not SiteOrigins.of([SITE]).allows(url)
    assert SiteOrigins.of([SITE]).foreign_requests().match(url)


def test_the_origin_rule_normalises_as_browsers_do() -> None:
    assert origin_of("HTTP://LocalHost:80/a?b#c") == "http://localhost"
    assert origin_of("https://[::1]:8443/") == "https://[::1]:8443"
    assert origin_of("http://h:port/") is None and origin_of("data:text/html,x") is None
    site = SiteOrigins.of([SITE + "/shop/", "https://a.test:443"])
    assert site.origins == (SITE, "https://a.test")
    for url in (SITE, SITE + "/", SITE + "/miniwob/x.html?s=1", SITE + "#/cart", "https://a.test/x",
                "ws://127.0.0.1:5000/socket"):
        assert site.allows(url), url
    requests, sockets = site.foreign_requests(), site.foreign_sockets()
    for url in (SITE + "/static/a.js", "https://a.test/", "data:image/png;base64,AA", "blob:" + SITE + "/1"):
        assert not requests.match(url), url
    assert not sockets.match("ws://127.0.0.1:5000/s") and not sockets.match("wss://a.test/s")
    assert sockets.match("ws://127.0.0.1:5001/s") and sockets.match("ws://localhost:5000/s")
    assert site.proxy_bypass() == "<-loopback>;127.0.0.1:5000;a.test:443"
    args = BrowserConfig(allowed_origins=("https://a.test",)).launch_args(site_origins=(SITE,))
    assert "--proxy-bypass-list=<-loopback>;127.0.0.1:5000;a.test:443" in args
