"""The checks every endpoint's validation is made of: a field of the right type and range, a
known field, a model name, and the sampling fields the generating endpoints share.

Each raises a 400 ApiError whose ``param`` names the field in OpenAI's notation
(``messages.[0].content``).
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ApiError, bad_request
from .fields import FieldTable

# Where messages and input items have always found it.
from .json_text import json_value as json_value

MAX_STOP_SEQUENCES = 4
# Ollama's `think` levels; "max" came in 0.21.3 (older servers answer it with a 400).
THINK_LEVELS = ("low", "medium", "high", "max")


def object_body(body: Any) -> dict[str, Any]:
    """The body as a dict; anything but a JSON object is a 400."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", None, "invalid_type")
    return body


def model(body: dict[str, Any]) -> None:
    """``model`` is present, a non-empty string, and valid Unicode."""
    value = body.get("model")
    if value is None:
        raise ApiError(
            400,
            "you must provide a model parameter",
            param="model",
            code="missing_required_parameter",
        )
    if not isinstance(value, str) or not value.strip():
        raise wrong_type("model", "a non-empty string", value)
    if not _is_unicode(value):
        raise bad_request("model must be valid Unicode text (no lone surrogates).", "model")


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def texts(value: Any, param: str, allow_empty: bool) -> list[str]:
    """A string or a non-empty list of strings (prompts, embedding inputs), as a list."""
    if isinstance(value, str):
        found = [value]
    elif isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        found = value
    elif (
        isinstance(value, list)
        and value
        and all(isinstance(item, int | list) and not isinstance(item, bool) for item in value)
    ):
        # Token ids belong to OpenAI's tokenizers; Ollama's models count tokens their own way.
        raise ApiError(
            400,
            f"{param} as token ids is not supported: send text (a string or a list of strings).",
            param=param,
            code="unsupported_value",
        )
    else:
        raise wrong_type(param, "a string or a non-empty array of strings", value)
    if not allow_empty:
        for index, text in enumerate(found):
            if not text:
                where = param if isinstance(value, str) else f"{param}.[{index}]"
                raise bad_request(f"{where} must not be an empty string.", where)
    return found


def sampling(body: dict[str, Any], table: FieldTable) -> None:
    """The fields chat and completions share: streaming, sampling, stop, Ollama extras."""
    optional(body, "stream", bool, "a boolean")
    number(body, "temperature", 0, 2)
    number(body, "top_p", 0, 1)
    number(body, "frequency_penalty", -2, 2)
    number(body, "presence_penalty", -2, 2)
    # Ollama reads integers as Go int64: anything larger fails upstream instead of here.
    integer(body, "max_tokens", 1, 2**63 - 1)
    integer(body, "max_completion_tokens", 1, 2**63 - 1)
    integer(body, "seed", -(2**63), 2**63 - 1)
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        raise bad_request(
            "Set max_tokens or max_completion_tokens, not both.", "max_completion_tokens"
        )
    _stop(body.get("stop"))
    stream_options(body, table)
    ollama_extras(body)


def ollama_extras(body: dict[str, Any]) -> None:
    """Ollama's own knobs (the SDK's ``extra_body``): ``options``, ``keep_alive``, ``think``,
    ``truncate``."""
    optional(body, "options", dict, "an object of Ollama options")
    optional(body, "truncate", bool, "a boolean")
    optional(body, "keep_alive", (str, int), "a duration such as '5m' or a number of seconds")
    think = body.get("think")
    # isinstance, not `in`: 1 == True, yet Ollama refuses a number.
    if think is not None and not isinstance(think, bool) and think not in THINK_LEVELS:
        raise bad_request("think must be true, false, 'low', 'medium', 'high' or 'max'.", "think")


def stream_options(body: dict[str, Any], table: FieldTable) -> None:
    """``stream_options``: an object of booleans the table knows, only with ``stream: true``."""
    options = body.get("stream_options")
    if options is None:
        return
    if not isinstance(options, dict):
        raise wrong_type("stream_options", "an object", options)
    if body.get("stream") is not True:
        raise bad_request("stream_options is only allowed when stream is true.", "stream_options")
    table.check(options, "stream_options")
    for name in options:
        optional(options, name, bool, "a boolean", prefix="stream_options.")


def _stop(stop: Any) -> None:
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(item, str) for item in stop):
        raise wrong_type("stop", "a string or an array of strings", stop)
    if len(stop) > MAX_STOP_SEQUENCES:
        raise bad_request(f"stop takes at most {MAX_STOP_SEQUENCES} sequences.", "stop")


def number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    """``name`` is absent or a finite number in [low, high]."""
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise wrong_type(name, "a number", value)
    if not low <= value <= high:
        raise bad_request(f"{name} must be between {low} and {high}, got {value}.", name)


def integer(body: dict[str, Any], name: str, low: int, high: int | None = None) -> None:
    """``name`` is absent or an integer of at least ``low`` (and at most ``high``)."""
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise wrong_type(name, "an integer", value)
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"between {low} and {high}"
        raise bad_request(f"{name} must be {bound}, got {value}.", name)


def optional(
    body: dict[str, Any], name: str, kind: type | tuple[type, ...], expected: str, prefix: str = ""
) -> None:
    """``name`` is absent, null, or of ``kind`` (a bool never passes for a number)."""
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) and kind is not bool:
        raise wrong_type(prefix + name, expected, value)
    if not isinstance(value, kind):
        raise wrong_type(prefix + name, expected, value)


def wrong_type(param: str, expected: str, value: Any) -> ApiError:
    """The 400 for a value of the wrong JSON type."""
    got = "null" if value is None else type(value).__name__
    return bad_request(f"{param} must be {expected}, got {got}.", param, "invalid_type")
