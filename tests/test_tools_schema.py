"""The @tool decorator: JSON Schema from type hints and docstrings, and argument validation."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest

from selfgym.envs.tools.schema import ArgumentError, Tool, parse_docstring, tool


@tool
def book_room(room: Literal["red", "blue"], hours: Annotated[int, {"minimum": 1, "maximum": 8}],
              guests: list[str], note: str | None = None, notify: bool = True) -> dict[str, Any]:
    """Book a meeting room.

    A second paragraph that is not part of the summary's first sentence.

    Args:
        room: which room to book.
        hours: how long, in hours; continued
            on a second line.
        guests: names of the guests.
        note: free text for the front desk.
        notify: e-mail the guests.

    Returns:
        the booking.
    """
    return {"room": room, "hours": hours, "guests": guests, "note": note, "notify": notify}


def test_schema_comes_from_hints_and_docstring():
    spec = book_room.spec()
    assert spec["type"] == "function" and spec["function"]["name"] == "book_room"
    params = spec["function"]["parameters"]
    assert params["type"] == "object" and params["additionalProperties"] is False
    assert params["required"] == ["room", "hours", "guests"]
    props = params["properties"]
    assert props["room"] == {"enum": ["red", "blue"], "type": "string", "description": "which room to book."}
    assert props["hours"]["type"] == "integer" and props["hours"]["minimum"] == 1 and props["hours"]["maximum"] == 8
    assert props["hours"]["description"] == "how long, in hours; continued on a second line."
    assert props["guests"]["type"] == "array" and props["guests"]["items"] == {"type": "string"}
    assert props["note"]["anyOf"] == [{"type": "string"}, {"type": "null"}] and props["note"]["default"] is None
    assert props["notify"]["default"] is True
    description = spec["function"]["description"]
    assert description.startswith("Book a meeting room.") and description.endswith("Returns: the booking.")
    assert book_room.signature().startswith('book_room(room: "red" | "blue", hours: integer, guests: array of string')


def test_the_tool_is_still_callable():
    assert book_room(room="red", hours=2, guests=["Ada"])["notify"] is True


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"room": "green", "hours": 2, "guests": []}, "at $.room: 'green' is not one of ['red', 'blue']"),
        ({"room": "red", "hours": 0, "guests": []}, "at $.hours: 0 is less than the minimum of 1"),
        ({"room": "red", "hours": 2, "guests": ["Ada", 7]}, "at $.guests[1]: 7 is not of type 'string'"),
        ({"room": "red", "hours": 2}, "'guests' is a required property"),
        ({"room": "red", "hours": 2, "guests": [], "floor": 3}, "'floor' was unexpected"),
        ({"room": "red", "hours": True, "guests": []}, "at $.hours: True is not of type 'integer'"),
    ],
)
def test_schema_violations_name_the_bad_field(arguments, fragment):
    with pytest.raises(ArgumentError) as caught:
        book_room.check_arguments(arguments)
    message = str(caught.value)
    assert message.startswith("invalid arguments for book_room:") and fragment in message
    assert "Expected book_room(" in message


def test_options_override_name_description_and_timeout():
    @tool(name="lookup", description="Look something up.", timeout_s=0.5)
    def find(key: str) -> str:
        return key

    assert (find.name, find.description, find.timeout_s) == ("lookup", "Look something up.", 0.5)


def test_methods_bind_to_their_instance_and_skip_self():
    class Counter:
        def __init__(self) -> None:
            self.value = 0

        @tool
        def add(self, amount: int = 1) -> int:
            """Add to the counter."""
            self.value += amount
            return self.value

    a, b = Counter(), Counter()
    assert "self" not in Counter.add.parameters["properties"]
    a.add(amount=5)
    b.add.fn(amount=2)
    assert (a.value, b.value) == (5, 2)
    bound = tool(a.add.fn)  # a plain bound method works too
    assert bound.parameters["properties"] == {"amount": {"type": "integer", "default": 1}}


@pytest.mark.parametrize(
    ("define", "message"),
    [
        ("def f(x): pass", "annotate parameter 'x'"),
        ("def f(x: set[int]): pass", "unsupported annotation"),
        ("def f(*xs: int): pass", "plain keyword-capable parameter"),
        ("def f(x: dict[int, str]): pass", "JSON object keys are strings"),
    ],
)
def test_unsupported_signatures_fail_at_definition(define, message):
    namespace: dict[str, Any] = {}
    exec(define, namespace)
    with pytest.raises(TypeError, match=message):
        tool(namespace["f"])


def test_bad_names_and_schemas_are_rejected():
    with pytest.raises(ValueError, match="must match"):
        Tool(name="has space", description="", parameters={"type": "object"}, fn=print)
    with pytest.raises(ValueError, match="not a valid JSON Schema"):
        Tool(name="ok", description="", parameters={"type": "object", "properties": {"a": {"type": 5}}}, fn=print)


def test_docstring_parser_handles_sections_and_types():
    summary, args = parse_docstring(
        "Do a thing.\n\nArgs:\n    path (str): where.\n    mode: how,\n        in detail.\n\nRaises:\n    ValueError: bad."
    )
    assert summary == "Do a thing."
    assert args == {"path": "where.", "mode": "how, in detail."}
