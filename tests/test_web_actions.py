"""The web env's action language, URL policy, accessibility-tree text and browser config (no browser)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from selfgym.envs.web.actions import WebAction, is_allowed_url, parse_action, resolve, resolve_url
from selfgym.envs.web.axtree import AXTree, ElementIds
from selfgym.envs.web.config import BrowserConfig
from selfgym.errors import ActionError, ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("click(12)", WebAction("click", element=12)),
        ("click('7')", WebAction("click", element=7)),
        ("click([5])", WebAction("click", element=5)),
        ('fill(3, "Ana Silva")', WebAction("fill", element=3, text="Ana Silva")),
        ("fill(3, 'it\\'s (fine)')", WebAction("fill", element=3, text="it's (fine)")),
        ('select(9, "Express")', WebAction("select", element=9, text="Express")),
        ('press(4, "Enter")', WebAction("press", element=4, text="Enter")),
        ('press("Tab")', WebAction("press", text="Tab")),
        ("scroll(down)", WebAction("scroll", text="down")),
        ('scroll("UP")', WebAction("scroll", text="up")),
        ('goto("/shop/#/cart")', WebAction("goto", text="/shop/#/cart")),
        ('answer("4.2.1")', WebAction("answer", text="4.2.1")),
        ("I see the button.\n```\nclick(12)\n```", WebAction("click", element=12)),
        ('answer("click(3) did not help")', WebAction("answer", text="click(3) did not help")),
    ],
)
def test_parse_action_reads_each_form(text: str, expected: WebAction) -> None:
    assert parse_action(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no action found"),
        ("I am not sure what to do", "no action found"),
        ("type(3, 'x')", "unknown action 'type'"),
        ("click(3) then click(4)", "found 2 actions"),
        ("click()", "click takes click(id)"),
        ("click(button)", "the element must be an id"),
        ('fill(3)', 'fill takes fill(id, "text")'),
        ("fill(3, x + y)", "must be numbers or quoted strings"),
        ('fill(3, "unclosed)', "could not read the call"),
        ("scroll(left)", "scroll takes scroll(up) or scroll(down)"),
        ('click(id=3)', "positional arguments only"),
    ],
)
def test_parse_action_errors_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ActionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_action(text)


def test_action_round_trips_through_its_text() -> None:
    for action in (WebAction("fill", element=2, text='say "hi"\\'), WebAction("scroll", text="down"),
                   WebAction("press", text="Tab"), WebAction("answer", text="x")):
        assert parse_action(str(action)) == action


def test_goto_policy_allows_only_loopback_and_listed_origins() -> None:
    assert is_allowed_url("http://127.0.0.1:8000/shop/")
    assert is_allowed_url("http://localhost/x")
    assert is_allowed_url("http://[::1]:9/")
    assert not is_allowed_url("https://example.com/")
    assert not is_allowed_url("http://10.0.0.1/")
    assert not is_allowed_url("file:///etc/passwd")
    assert not is_allowed_url("javascript:alert(1)")
    assert is_allowed_url("https://intranet.test:8443/a", ("https://intranet.test:8443",))
    base = "http://127.0.0.1:5000"
    assert resolve_url("/forum/#/", base + "/shop/", base) == base + "/forum/#/"
    assert resolve_url("#/cart", base + "/shop/#/", base) == base + "/shop/#/cart"


# A real page.aria_snapshot(mode="ai") output: quoted keys, a field with a placeholder, options.
SNAPSHOT = """\
- generic [active] [ref=e1]:
  - generic [ref=e2]: "Click on Tab #3."
  - tablist [ref=e5]:
    - tab [selected] [ref=e6]:
      - 'link "Tab #1" [ref=e7] [cursor=pointer]':
        - /url: "#tabs-1"
  - textbox "Check-in date" [ref=e9]:
    - /placeholder: YYYY-MM-DD
    - text: 2026-05-08
  - textbox "Name" [ref=e10]: bob
  - combobox "Nights" [ref=e11]:
    - option "1"
    - option "2" [selected]
  - checkbox "Breakfast \\"extra\\"" [checked] [ref=e12]
  - text: Breakfast "extra"
  - generic [ref=e13]:
    - button "Save" [ref=e14]
"""


def test_axtree_turns_the_snapshot_into_compact_lines_with_ids() -> None:
    tree = AXTree.from_snapshot(SNAPSHOT, ElementIds())
    lines = tree.text.splitlines()
    assert lines[0] == '[2] generic: Click on Tab #3.'
    assert '[5] link "Tab #1" -> #tabs-1' in tree.text  # [cursor=pointer] dropped on a link
    assert '[6] textbox "Check-in date" placeholder="YYYY-MM-DD": 2026-05-08' in lines
    assert '[8] combobox "Nights"' in lines and '  option "2" [selected]' in lines
    assert "Breakfast" in tree.text and 'text: Breakfast "extra"' not in tree.text  # label repeats the name
    assert '[11] button "Save"' in lines  # the nameless wrapper generic is gone, its child hoisted
    assert tree.find("combobox", "Nights").selected_option == "2"
    assert tree.find("checkbox").checked and tree.find("checkbox").name == 'Breakfast "extra"'
    assert tree.find("textbox", "Name").value == "bob"


def test_element_ids_stay_stable_across_snapshots() -> None:
    ids = ElementIds()
    first = AXTree.from_snapshot(SNAPSHOT, ids)
    later = AXTree.from_snapshot('- button "New" [ref=e20]\n- button "Save" [ref=e14]\n', ids)
    save_first = first.find("button", "Save").id
    assert later.find("button", "Save").id == save_first
    assert later.find("button", "New").id == save_first + 1
    assert later.by_id[save_first].ref == "e14"


def test_browser_config_checks_its_values() -> None:
    assert BrowserConfig.coerce({"prewarm": False, "allowed_origins": ["https://a.test"]}).allowed_origins == (
        "https://a.test",)
    with pytest.raises(ConfigError, match="unknown BrowserConfig keys"):
        BrowserConfig.coerce({"prewarn": False})
    with pytest.raises(ConfigError, match="hang_timeout_s"):
        BrowserConfig(action_timeout_s=5, hang_timeout_s=2)
    with pytest.raises(ConfigError, match="allowed_origins"):
        BrowserConfig(allowed_origins=("a.test",))
    args = BrowserConfig(allowed_origins=("https://a.test:8443",)).launch_args()
    assert "--proxy-bypass-list=a.test:8443" in args and "--no-sandbox" in args


def test_importing_selfgym_registers_web_envs_without_loading_playwright() -> None:
    code = ("import sys, importlib.util, selfgym; ids = [e.id for e in selfgym.list_envs()]; "
            "assert 'selfgym/Web-v0' in ids and 'selfgym/WebShop-v0' in ids, ids; "
            "assert ('selfgym/MiniWoB-v0' in ids) == (importlib.util.find_spec('miniwob') is not None); "
            "assert 'playwright' not in sys.modules and 'miniwob' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_resolve_checks_ids_options_and_urls_before_the_browser_is_touched() -> None:
    tree = AXTree.from_snapshot(SNAPSHOT, ElementIds())
    nights = tree.find("combobox", "Nights").id
    action, ref, url = resolve(WebAction("select", element=nights, text=" 2 "), tree,
                               current_url="http://127.0.0.1:1/a/", base_url="http://127.0.0.1:1")
    assert action.text == "2" and ref == "e11" and url is None
    with pytest.raises(ActionError, match='has no option "9"; its options are "1", "2"'):
        resolve(WebAction("select", element=nights, text="9"), tree, current_url="", base_url="")
    with pytest.raises(ActionError, match=r"no element \[99\]"):
        resolve(WebAction("click", element=99), tree, current_url="", base_url="")
    _, _, url = resolve(WebAction("goto", text="/forum/"), tree, current_url="http://127.0.0.1:1/shop/",
                        base_url="http://127.0.0.1:1")
    assert url == "http://127.0.0.1:1/forum/"
    with pytest.raises(ActionError, match="not allowed"):
        resolve(WebAction("goto", text="file:///etc/passwd"), tree, current_url="", base_url="http://127.0.0.1:1")
