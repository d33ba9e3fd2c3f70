"""JSON from clients: what parsing may cost is bounded first; NaN and Infinity never pass."""

import json
import math
import time
import tracemalloc

import pytest

from ollama_openai.errors import ApiError
from ollama_openai.schemas.json_text import (
    MAX_DEPTH,
    MAX_VALUES,
    json_value,
    non_finite_path,
    parse_json,
)

MIB = 1024 * 1024


def refusal(raw):
    with pytest.raises(ApiError) as caught:
        parse_json(raw)
    return caught.value.status, caught.value.code, caught.value.param


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "x", "metadata": [' + b"{}," * (4 * MIB // 3) + b"{}]}",
        b"[" + b"[]," * (4 * MIB // 3) + b"[]]",
        b"[" + b"1," * (2 * MIB) + b"1]",
        b'["' + b'a","' * MIB + b'"]',
    ],
    ids=["objects", "arrays", "numbers", "strings"],
)
def test_a_body_of_tiny_values_is_refused_before_it_is_parsed(raw):
    # Parsed, 4 MiB of {} took 100 MiB and half a second; refused, it costs a copy or two. The
    # memory says it was not parsed; a time bound would only measure the machine's load (it
    # failed a CI run under tracemalloc on a busy machine).
    tracemalloc.start()
    try:
        assert refusal(raw) == (413, "request_too_large", None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * len(raw) + MIB


def test_as_many_values_as_allowed_parse():
    assert len(parse_json(json.dumps([0] * (MAX_VALUES - 1)).encode())) == MAX_VALUES - 1


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 960, 100_000])
def test_nesting_deeper_than_the_bound_is_invalid_json(depth):
    raw = b'{"options": ' + b"[" * depth + b"]" * depth + b"}"
    assert refusal(raw) == (400, "invalid_json", None)


def test_nesting_up_to_the_bound_and_brackets_inside_strings_pass():
    nested = b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1)
    assert parse_json(b'{"x": ' + nested + b"}")
    # Brackets and commas in text are text: a program's source is no bomb.
    source = 'f(a[1], {b: [c]}) \\" [[[[ ' * 100_000
    assert parse_json(json.dumps({"content": source}).encode()) == {"content": source}


@pytest.mark.parametrize(
    "raw",
    [
        b'"' + b'\\"' * (2 * MIB),  # a string that never ends, full of escaped quotes
        b'"a\\"' * MIB,
        b'"' + b"\\," * (2 * MIB) + b'"',
    ],
    ids=["unterminated", "alternating", "escapes"],
)
def test_strings_made_to_slow_the_scan_down_take_it_linearly(raw):
    # Linear: well under a second. Quadratic, 2 MiB of escapes would take hours, so a bound
    # this far above the linear time catches it without failing on a busy machine.
    started = time.monotonic()
    with pytest.raises(ApiError):
        parse_json(raw)
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"temperature": math.nan}, "temperature"),
        ({"options": {"num_ctx": 8192, "temperature": math.inf}}, "options.temperature"),
        (
            {"tools": [{"function": {"parameters": {"maximum": -math.inf}}}]},
            "tools.[0].function.parameters.maximum",
        ),
        ({"x": [1, [2, math.nan]]}, "x.[1].[1]"),
    ],
)
def test_nan_and_infinity_are_refused_naming_the_field(body, param):
    assert refusal(json.dumps(body).encode()) == (400, "invalid_type", param)
    assert non_finite_path(body) == param


def test_json_inside_a_request_is_held_to_the_same_bounds():
    assert json_value('{"city": "Paris"}') == {"city": "Paris"}
    assert json_value("") == {}
    assert json_value('{"x": NaN}') is None
    assert json_value("[" * 100 + "]" * 100) is None
    assert json_value("[" + "{}," * MAX_VALUES + "{}]") is None
    assert json_value("{not json") is None


@pytest.mark.parametrize("number", [b"1e999", b"-1E400", b"123456789e999"])
def test_a_number_no_float_holds_is_refused_as_infinity(number):
    # Valid JSON text, but parsed it is infinity, which Ollama could not read.
    with pytest.raises(ApiError) as caught:
        parse_json(b'{"model": "x", "options": {"temperature": ' + number + b"}}")
    assert (caught.value.status, caught.value.code) == (400, "invalid_type")
    assert caught.value.param == "options.temperature"
    assert f"got {number.decode()}" in caught.value.message


def test_large_and_tiny_numbers_a_float_holds_pass():
    raw = b'{"seed": 123456789012345678901234567890, "x": [1.5e-400, 1e308, -0.0]}'
    assert parse_json(raw) == {"seed": 123456789012345678901234567890, "x": [0.0, 1e308, -0.0]}
