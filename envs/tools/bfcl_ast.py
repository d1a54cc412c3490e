"""AST scoring of function calls, with the rules of the Berkeley Function Calling Leaderboard.

A call matches a ground-truth entry when the function name is right, every required parameter is
given, no unknown parameter is given, each value has the declared type (an int is accepted for a
float) and is one of the accepted values, and every parameter the ground truth does not mark
optional (``""`` among its accepted values) is present. Strings are compared after removing
spaces and ``,./-_*^`` and lower-casing; lists element-wise the same way; dicts key by key.
``parallel`` categories match calls to ground-truth entries in any order; ``multiple`` ones expect
one call among several offered functions. Python-language categories only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

__all__ = ["AstResult", "ast_check", "standardize"]

_PYTHON_TYPES: dict[str, type] = {
    "string": str, "integer": int, "float": float, "number": float, "boolean": bool, "array": list,
    "tuple": list, "dict": dict, "object": dict, "any": str,
}
_STRIP = re.compile(r"[ ,./\-_*^]")


@dataclass(frozen=True)
class AstResult:
    """Whether the calls match; ``error`` says the first mismatch, ``error_type`` its kind."""

    valid: bool
    error: str = ""
    error_type: str = ""


_OK = AstResult(True)


def standardize(text: str) -> str:
    """BFCL's string normalisation: drop spaces and ``,./-_*^``, lower-case, ``'`` -> ``"``."""
    return _STRIP.sub("", text).lower().replace("'", '"')


def ast_check(
    functions: Sequence[dict[str, Any]],
    calls: Sequence[tuple[str, dict[str, Any]]],
    ground_truth: Sequence[dict[str, dict[str, list[Any]]]],
    category: str,
) -> AstResult:
    """Score ``calls`` (``(name, arguments)`` pairs) against BFCL ground truth for ``category``."""
    if "parallel" in category:
        return _parallel(functions, calls, ground_truth)
    if len(calls) != len(ground_truth):
        return AstResult(False, f"expected {len(ground_truth)} call(s), got {len(calls)}", "wrong_count")
    expected_name = next(iter(ground_truth[0]))
    description = _find(functions, expected_name)
    if description is None:
        return AstResult(False, f"function {expected_name!r} is not among the offered functions", "bad_data")
    return _check_call(description, calls[0], ground_truth[0])


def _find(functions: Sequence[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((f for f in functions if f["name"] == name), None)


def _name_matches(given: str, expected: str) -> bool:
    # Function-calling APIs forbid "." in names, so a model may write "math_factorial" for
    # "math.factorial" (BFCL accepts that for such models too).
    return given == expected or given == expected.replace(".", "_")


def _parallel(functions: Sequence[dict[str, Any]], calls: Sequence[tuple[str, dict[str, Any]]],
              ground_truth: Sequence[dict[str, dict[str, list[Any]]]]) -> AstResult:
    if len(calls) != len(ground_truth):
        return AstResult(False, f"expected {len(ground_truth)} call(s), got {len(calls)}", "wrong_count")
    unmatched = list(range(len(calls)))
    for i, answer in enumerate(ground_truth):
        name = next(iter(answer))
        description = _find(functions, name)
        if description is None:
            return AstResult(False, f"function {name!r} is not among the offered functions", "bad_data")
        last = AstResult(False, "no call left to match", "cannot_find_match")
        for index in unmatched:
            last = _check_call(description, calls[index], answer)
            if last.valid:
                unmatched.remove(index)
                break
        else:
            return AstResult(False, f"no call matches expected call {i + 1} ({name}): {last.error}", "cannot_find_match")
    return _OK


def _check_call(description: dict[str, Any], call: tuple[str, dict[str, Any]],
                answer: dict[str, dict[str, list[Any]]]) -> AstResult:
    expected_name = description["name"]
    accepted = next(iter(answer.values()))
    name, arguments = call
    if not _name_matches(name, expected_name):
        return AstResult(False, f"expected a call to {expected_name!r}, got {name!r}", "wrong_func_name")
    properties = description.get("parameters", {}).get("properties", {})
    for param in description.get("parameters", {}).get("required", []):
        if param not in arguments:
            return AstResult(False, f"missing required parameter {param!r}", "missing_required")
    for param, value in arguments.items():
        if param not in properties or param not in accepted:
            return AstResult(False, f"unexpected parameter {param!r}", "unexpected_param")
        result = _check_value(param, value, properties[param], accepted[param])
        if not result.valid:
            return result
    for param, values in accepted.items():
        if param not in arguments and "" not in values:
            return AstResult(False, f"parameter {param!r} is missing and not optional", "missing_optional")
    return _OK


def _check_value(param: str, value: Any, details: dict[str, Any], accepted: list[Any]) -> AstResult:
    kind = details.get("type", "any")
    expected = _PYTHON_TYPES.get(kind, str)
    nested = _PYTHON_TYPES.get(details.get("items", {}).get("type", ""), None) if kind in ("array", "tuple") else None
    if expected is float and type(value) is int:
        value = float(value)
    answer_type = next((type(a) for a in accepted if a != ""), None)
    # A ground truth of another type than declared means "a variable name": compare as given.
    is_variable = answer_type is not None and answer_type is not expected
    if type(value) is expected:
        if nested is not None and not _nested_ok(cast(list[Any], value), accepted, nested):
            return AstResult(False, f"items of {param!r} have the wrong type", "type_error:nested")
    elif not (is_variable and type(value) is answer_type):
        return AstResult(False, f"{param!r} should be of type {kind}, got {type(value).__name__} ({value!r})",
                         "type_error:simple")
    if not is_variable:
        if expected is dict:
            return _dict_match(param, value, accepted)
        if expected is list and nested is dict:
            return _list_of_dicts_match(param, value, accepted)
        if expected is str:
            ok = standardize(value) in {standardize(a) for a in accepted if isinstance(a, str)}
            return _OK if ok else AstResult(False, f"{param!r}: {value!r} is not one of {accepted}", "value_error:string")
        if expected is list:
            ok = _std_list(value) in [_std_list(a) for a in accepted if isinstance(a, list)]
            return _OK if ok else AstResult(False, f"{param!r}: {value!r} is not one of {accepted}", "value_error:list")
    if value not in accepted:
        return AstResult(False, f"{param!r}: {value!r} is not one of {accepted}", "value_error:others")
    return _OK


def _nested_ok(value: list[Any], accepted: list[Any], nested: type) -> bool:
    def item_ok(item: Any, options: list[Any]) -> bool:
        if nested is float and type(item) is int:
            return True
        answer_type = next((type(a) for a in options if a != ""), None)
        return type(item) is nested or (answer_type is not None and type(item) is answer_type)

    lists = [a for a in accepted if isinstance(a, list)]
    return not lists or any(all(item_ok(item, option) for item in value) for option in lists)


def _std_list(values: list[Any]) -> list[Any]:
    return [standardize(v) if isinstance(v, str) else v for v in values]


def _dict_match(param: str, value: dict[str, Any], accepted: list[Any]) -> AstResult:
    error = AstResult(False, f"{param!r}: {value!r} matches no accepted dict", "value_error:dict")
    for option in accepted:
        if option == "" or not isinstance(option, dict):
            continue
        keys_ok = all(k in option for k in value) and all(k in value or "" in v for k, v in option.items())
        if keys_ok and all(_std(v) in [_std(a) for a in option[k]] for k, v in value.items()):
            return _OK
    return error


def _list_of_dicts_match(param: str, value: list[Any], accepted: list[Any]) -> AstResult:
    for option in accepted:
        if isinstance(option, list) and len(option) == len(value) and all(
            isinstance(v, dict) and _dict_match(param, v, [o]).valid for v, o in zip(value, option, strict=True)
        ):
            return _OK
    return AstResult(False, f"{param!r}: {value!r} matches no accepted list of dicts", "value_error:list_dict")


def _std(value: Any) -> Any:
    return standardize(value) if isinstance(value, str) else value
