"""The local site server over real HTTP on loopback (no browser)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from selfgym.envs.web.server import SESSION_COOKIE, SiteServer


@pytest.fixture(scope="module")
def server() -> Iterator[SiteServer]:
    srv = SiteServer()
    yield srv
    srv.close()


def fetch(server: SiteServer, path: str, *, token: str | None = None, method: str = "GET",
          body: object = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.base_url + path, data=data, method=method)
    if token:
        request.add_header("Cookie", f"{SESSION_COOKIE}={token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_site_pages_carry_their_session_data(server: SiteServer) -> None:
    token = server.open_session({"store": "Test </script><b>", "products": []})
    status, page = fetch(server, "/shop/", token=token)
    assert status == 200 and b"window.SITE_DATA" in page
    assert b"Test \\u003c/script>\\u003cb>" in page  # cannot close the script tag
    status, anonymous = fetch(server, "/shop/")
    assert status == 200 and b"window.SITE_DATA = {}" in anonymous
    assert fetch(server, "/static/shop.js")[0] == 200
    assert fetch(server, "/")[0] == 200 and b"/forum/" in fetch(server, "/")[1]


def test_state_api_keeps_each_session_apart(server: SiteServer) -> None:
    a, b = server.open_session(), server.open_session()
    assert fetch(server, "/api/state/cart", token=a, method="PUT", body=[{"id": 1, "qty": 2}])[0] == 200
    fetch(server, "/api/state/orders", token=a, method="POST", body={"id": 1001})
    status, body = fetch(server, "/api/state/orders", token=a, method="POST", body={"id": 1002})
    assert status == 200 and json.loads(body)["orders"] == [{"id": 1001}, {"id": 1002}]
    assert server.state(a) == {"cart": [{"id": 1, "qty": 2}], "orders": [{"id": 1001}, {"id": 1002}]}
    assert server.state(a) is not server.state(a)  # callers get copies
    assert server.state(b) == {}
    assert fetch(server, "/api/state/cart", method="PUT", body=[])[0] == 403  # no session, no write
    assert fetch(server, "/api/state/../x", token=a, method="PUT", body=1)[0] == 404
    fetch(server, "/api/state/profile", token=a, method="PUT", body={"name": "x"})
    assert fetch(server, "/api/state/profile", token=a, method="POST", body=1)[0] == 400  # not a list
    _, page = fetch(server, "/forms/", token=a)
    assert b'window.SITE_STATE = {"cart": [{"id": 1, "qty": 2}]' in page  # a reload sees the saved state
    server.close_session(a)
    assert server.state(a) == {}


def test_files_outside_the_served_folders_stay_hidden(server: SiteServer) -> None:
    assert fetch(server, "/static/../server.py")[0] == 404
    assert fetch(server, "/static/nope.js")[0] == 404
    if server.miniwob_dir is not None:
        assert fetch(server, "/miniwob/miniwob/click-button.html")[0] == 200
        assert fetch(server, "/miniwob/../../../../etc/passwd")[0] == 404
        assert fetch(server, "/miniwob/%2e%2e/%2e%2e/registration.py")[0] == 404
