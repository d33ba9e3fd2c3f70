"""JSON text from clients: bounded before it is parsed, strict about NaN and Infinity.

``json.loads`` builds a Python object for every value, so the number of values a body holds
is bounded first, by counts at C speed (20 MiB of ``[{},{},...]`` cost 600 MiB once parsed);
only a body with many commas or brackets (a CSV, source code, an attack) has them counted
again outside its strings. The nesting depth is bounded once parsed (code that walks a value
recurses). NaN and Infinity, for which JSON has no words, are refused wherever they are:
Ollama could not read them. Used for request bodies and for the JSON strings inside them
(tool call arguments).
"""

from __future__ import annotations

import json
import math
import re
from array import array
from itertools import accumulate
from typing import Any

from ..errors import ApiError, bad_request

# Deeper than any JSON schema or message list needs, far below Python's recursion limit.
MAX_DEPTH = 64
# Values (objects, arrays, and the items after each comma): 2,048 messages with parts and
# tool calls, or a hundred tools with large schemas, hold a few tens of thousands.
MAX_VALUES = 100_000
# Every string is a value or a key: more strings than this means more values than allowed.
_MAX_STRINGS = 2 * MAX_VALUES
# A JSON string, escapes included.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_DEPTH_PREFIX = 64 * 1024
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
# Brackets as signed bytes: +1 opens, -1 (0xff) closes; their running sum is the depth.
_DEPTH_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def parse_json(raw: bytes) -> Any:
    """The value of a request body: bounded, parsed, no NaN or Infinity; else a 4xx."""
    check_values(raw)
    # NaN, Infinity and numbers no float holds (1e999, read as infinity), as written.
    constants: list[str] = []

    def constant(name: str) -> float:
        constants.append(name)
        return float(name)

    def number(text: str) -> float:
        value = float(text)
        if math.isinf(value):
            constants.append(text)
        return value

    try:
        value = json.loads(raw, parse_constant=constant, parse_float=number)
    except (ValueError, RecursionError):
        raise bad_request(
            "We could not parse the JSON body of your request: it is not valid JSON.",
            None,
            "invalid_json",
        ) from None
    # Fewer brackets than the bound cannot nest deeper: most bodies need no walk.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and deeper_than(value, MAX_DEPTH):
        raise too_deep()
    if constants:
        where = non_finite_path(value)
        raise bad_request(
            f"{where or 'The body'} must be a finite number, got {constants[0]}: JSON has no "
            "NaN or Infinity.",
            where or None,
            "invalid_type",
        )
    return value


def check_values(raw: bytes) -> None:
    """A 413 when ``raw`` holds more than MAX_VALUES values, before it is parsed."""
    if _values(raw, 0, len(raw)) <= MAX_VALUES:
        return
    # Commas and brackets inside strings are text: count again around the strings, jumping
    # from quote to quote, with no copy of the body (a substitution would make an object for
    # every string).
    values = strings = end = 0
    while (start := raw.find(b'"', end)) >= 0 and strings < _MAX_STRINGS:
        values += _values(raw, end, start)
        string = _STRING.match(raw, start)
        # A string that never ends runs to the end of the body, which is no JSON anyway.
        end = len(raw) if string is None else string.end()
        strings += 1
    if strings < _MAX_STRINGS and values + _values(raw, end, len(raw)) <= MAX_VALUES:
        return
    # Refused either way: a body that is all brackets may be a deep one rather than a wide,
    # which its first brackets tell.
    steps = array("b", raw[:_DEPTH_PREFIX].translate(_DEPTH_STEPS, _NOT_BRACKETS))
    if max(accumulate(steps), default=0) > MAX_DEPTH:
        raise too_deep()
    raise too_large(f"made of more than {MAX_VALUES} JSON values")


def _values(text: bytes, start: int, end: int) -> int:
    return (
        text.count(b",", start, end) + text.count(b"[", start, end) + text.count(b"{", start, end)
    )


def deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests objects and arrays more than ``limit`` deep (no recursion)."""
    pending = [(value, 1)] if isinstance(value, dict | list) else []
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def non_finite_path(value: Any, path: str = "") -> str | None:
    """Where ``value`` holds NaN or Infinity, in OpenAI's notation (``options.[2].x``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    if isinstance(value, dict):
        items: Any = ((f"{path}.{key}" if path else key, item) for key, item in value.items())
    elif isinstance(value, list):
        items = ((f"{path}.[{index}]", item) for index, item in enumerate(value))
    else:
        return None
    for where, item in items:
        found = non_finite_path(item, where)
        if found is not None:
            return found
    return None


def json_value(text: str) -> Any:
    """The value of a JSON text inside a request (an empty text is ``{}``), or None when it is
    not valid JSON, is too deep or too large, or holds NaN or Infinity."""
    if not text.strip():
        return {}
    try:
        return parse_json(text.encode())
    except ApiError:
        return None


def too_deep() -> ApiError:
    """The 400 for a body nested deeper than MAX_DEPTH."""
    return bad_request(f"The JSON body nests deeper than {MAX_DEPTH} levels.", None, "invalid_json")


def too_large(what: str) -> ApiError:
    """The 413 for a body over a size bound: bytes, or JSON values."""
    return ApiError(413, f"The request body is {what}.", code="request_too_large")
