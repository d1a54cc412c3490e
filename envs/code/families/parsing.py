"""Family ``parsing``: read structure out of strings, from ``int("42")`` to quoted CSV fields."""

from __future__ import annotations

from .base import CodeFamily

FAMILY = CodeFamily("parsing", "parsing strings")
variant = FAMILY.variant

_ROMAN = ((1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"), (50, "L"), (40, "XL"),
          (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"))


def _roman(n: int) -> str:
    out = ""
    for value, numeral in _ROMAN:
        while n >= value:
            out += numeral
            n -= value
    return out


def _key_values(g):
    keys = list(dict.fromkeys(g.word(1, 3) for _ in range(g.length())))
    return (";".join(f"{key}={g.int()}" for key in keys),)


def _mixed_text(g):
    return ("".join(g.choice([g.word(1, 3), str(g.nat())]) for _ in range(g.length())),)


def _int_list_text(g):
    return (",".join(g.choice(["", " "]) + str(g.int()) for _ in range(g.length(1))),)


def _expression(g):
    terms = [str(g.nat()) for _ in range(g.length(1))]
    text = terms[0]
    for term in terms[1:]:
        text += g.choice("+-") + term
    return (text,)


def _duration(g):
    parts = [(g.int(0, 30), "h"), (g.int(0, 59), "m"), (g.int(0, 59), "s")]
    chosen = [f"{n}{unit}" for n, unit in parts if g.bool()] or [f"{parts[2][0]}s"]
    return ("".join(chosen),)


def _csv_line(g):
    fields = [g.choice([g.word(0, 4), f'"{g.word(1, 3)},{g.word(0, 3)}"', str(g.nat())]) for _ in range(g.length(1))]
    return (",".join(fields),)


# ----------------------------------------------------------------------------- tier 0
@variant(tier=0, doc="Return the integer written in the string s (for example '42' or '-7').",
         inputs=lambda g: (str(g.int()),), edges=[("0",)])
def parse_int(s: str) -> int:
    return int(s)


@variant(tier=0, doc="Return how many words s has (words are separated by whitespace).",
         inputs=lambda g: (g.sentence(0, 6),), edges=[("",), ("  one  ",)])
def count_words(s: str) -> int:
    return len(s.split())


@variant(tier=0, doc="Return the list of the parts of s between commas (split_commas('a,b') == ['a', 'b']).",
         inputs=lambda g: (",".join(g.words(1)),), edges=[("x",)])
def split_commas(s: str) -> list[str]:
    return s.split(",")


@variant(tier=0, doc="Return the last word of s (s has at least one word; words are separated by spaces).",
         inputs=lambda g: (g.sentence(1, 5),))
def last_word(s: str) -> str:
    return s.split()[-1]


# ----------------------------------------------------------------------------- tier 1
@variant(tier=1, doc="Parse 'key=value' pairs separated by ';' into a dict from key to integer value "
         "('' gives {}).", inputs=_key_values, edges=[("",), ("a=-1",)])
def parse_key_values(s: str) -> dict[str, int]:
    out = {}
    for pair in s.split(";"):
        if pair:
            key, value = pair.split("=")
            out[key] = int(value)
    return out


@variant(tier=1, doc="Return the sum of all numbers (maximal runs of digits) in s (sum_numbers('a12b3') == 15).",
         inputs=_mixed_text, edges=[("",), ("abc",), ("007x",)])
def sum_numbers(s: str) -> int:
    total, current = 0, ""
    for char in s + " ":
        if char.isdigit():
            current += char
        elif current:
            total, current = total + int(current), ""
    return total


@variant(tier=1, doc="Return the number of minutes since midnight for a time written 'HH:MM'.",
         inputs=lambda g: (f"{g.int(0, 23):02d}:{g.int(0, 59):02d}",), edges=[("00:00",), ("23:59",)])
def to_minutes(s: str) -> int:
    hours, minutes = s.split(":")
    return int(hours) * 60 + int(minutes)


@variant(tier=1, doc="Parse integers separated by commas, with optional spaces, into a list ('' gives []).",
         inputs=_int_list_text, edges=[("",), (" 5",)])
def parse_int_list(s: str) -> list[int]:
    return [int(part) for part in s.split(",") if part.strip()]


# ----------------------------------------------------------------------------- tier 2
@variant(tier=2, doc="Evaluate an expression of non-negative integers joined by '+' and '-' with no spaces "
         "(evaluate('12+3-4') == 11).", inputs=_expression, edges=[("0",), ("5",), ("10-20",)])
def evaluate(s: str) -> int:
    total, number, sign = 0, 0, 1
    for char in s:
        if char.isdigit():
            number = number * 10 + int(char)
        else:
            total += sign * number
            number, sign = 0, (1 if char == "+" else -1)
    return total + sign * number


@variant(tier=2, doc="Return the number of seconds in a duration like '1h30m15s' (each of h, m, s is optional "
         "but they come in that order).", inputs=_duration, edges=[("0s",), ("2h",), ("1m1s",)])
def parse_duration(s: str) -> int:
    seconds, number = 0, ""
    for char in s:
        if char.isdigit():
            number += char
        else:
            seconds += int(number) * {"h": 3600, "m": 60, "s": 1}[char]
            number = ""
    return seconds


@variant(tier=2, doc="Return the value of the Roman numeral s (between 1 and 3999).",
         inputs=lambda g: (_roman(g.int(1, 3999)),), edges=[("IV",), ("IX",), ("MCMXCIV",), ("I",)])
def roman_to_int(s: str) -> int:
    values = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
    total = 0
    for i, char in enumerate(s):
        value = values[char]
        total += -value if i + 1 < len(s) and values[s[i + 1]] > value else value
    return total


@variant(tier=2, doc="Split a CSV line into its fields: fields are separated by commas, and a field in double "
         "quotes may contain commas (the quotes are not part of the field).", inputs=_csv_line,
         edges=[("",), ('"a,b"',), ("a,,b",)])
def parse_csv_line(s: str) -> list[str]:
    fields, current, quoted = [], "", False
    for char in s:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            fields.append(current)
            current = ""
        else:
            current += char
    return fields + [current]
