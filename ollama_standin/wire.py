"""Ollama's wire format as its Go server writes and reads it.

This module owns the bytes: JSON as Go's encoding/json writes it, RFC 3339 timestamps, the
decoding of request bodies with Go's own error messages (gin's ShouldBindJSON, api.Message,
Options.FromMap, base64 images), and the JSON, error and NDJSON answers. A request Ollama
refuses raises `Refusal`; the app renders it as `{"error": ...}` with its status.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import string
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from werkzeug.wrappers import Response

RUNNER_ERROR = "llama runner process has terminated: exit status 2"
# Ollama's 400 for a prompt longer than num_ctx when the request says `truncate: false` (0.12.6+).
CONTEXT_OVERFLOW = "the input length exceeds the context length"
# The levels `think` takes besides true and false; "max" since 0.21.3.
THINK_LEVELS = ("high", "medium", "low", "max")
_ROLES = ("system", "user", "assistant", "tool")
# Option types as Ollama's api.Options declares them; a wrong type is a 500 from the runner.
_INT_OPTIONS: tuple[str, ...] = (
    "num_keep",
    "seed",
    "num_predict",
    "top_k",
    "repeat_last_n",
    "num_ctx",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "num_thread",
)
_FLOAT_OPTIONS: tuple[str, ...] = (
    "top_p",
    "min_p",
    "typical_p",
    "temperature",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
)
_BASE64_ALPHABET = frozenset(string.ascii_letters + string.digits + "+/=")
_PACIFIC = timezone(timedelta(hours=-7))

# Field types of each request body, as Go's decoder enforces them (JSON null always passes).
GO_TYPES: dict[str, tuple[str, dict[str, tuple[tuple[type, ...], str]]]] = {
    "/api/show": ("ShowRequest", {"model": ((str,), "string"), "name": ((str,), "string")}),
    "/api/embed": (
        "EmbedRequest",
        {
            "model": ((str,), "string"),
            "dimensions": ((int,), "int"),
            "truncate": ((bool,), "bool"),
            "options": ((dict,), "map[string]interface {}"),
        },
    ),
    "/api/chat": (
        "ChatRequest",
        {
            "model": ((str,), "string"),
            "messages": ((list,), "[]api.Message"),
            "stream": ((bool,), "bool"),
            "tools": ((list,), "api.Tools"),
            "options": ((dict,), "map[string]interface {}"),
            "logprobs": ((bool,), "bool"),
            "top_logprobs": ((int,), "int"),
            "truncate": ((bool,), "bool"),
            "shift": ((bool,), "bool"),
        },
    ),
    "/api/generate": (
        "GenerateRequest",
        {
            "model": ((str,), "string"),
            "prompt": ((str,), "string"),
            "suffix": ((str,), "string"),
            "system": ((str,), "string"),
            "stream": ((bool,), "bool"),
            "raw": ((bool,), "bool"),
            "images": ((list,), "[]api.ImageData"),
            "context": ((list,), "[]int"),
            "options": ((dict,), "map[string]interface {}"),
            "logprobs": ((bool,), "bool"),
            "top_logprobs": ((int,), "int"),
            "truncate": ((bool,), "bool"),
            "shift": ((bool,), "bool"),
        },
    ),
}


class Refusal(Exception):
    """An answer decided before any work: a status and Ollama's error message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def go_json(value: Any) -> str:
    """JSON as Go's encoding/json writes it: compact, UTF-8, with <, >, & escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _rfc3339_nano(when_ns: int | None, zone: timezone, suffix: str) -> str:
    """Go's time.RFC3339Nano: nanoseconds with trailing zeros trimmed, then the zone."""
    when_ns = time.time_ns() if when_ns is None else when_ns
    seconds, nanos = divmod(when_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, zone).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{stamp}.{fraction}{suffix}" if fraction else f"{stamp}{suffix}"


def go_timestamp(when_ns: int | None = None) -> str:
    """A `created_at`: RFC 3339 in UTC with nanoseconds, as Ollama stamps its answers."""
    return _rfc3339_nano(when_ns, UTC, "Z")


def local_timestamp(when_ns: int | None = None) -> str:
    """A file time as Ollama writes it (`modified_at`, `expires_at`): the host's UTC offset."""
    return _rfc3339_nano(when_ns, _PACIFIC, "-07:00")


def json_response(value: Any, status: int = 200) -> Response:
    """gin's c.JSON."""
    return Response(go_json(value), status, content_type="application/json; charset=utf-8")


def error_response(status: int, message: str) -> Response:
    """Ollama's error body, `{"error": "..."}`."""
    return json_response({"error": message}, status)


def ndjson_line(value: dict[str, Any]) -> bytes:
    """One line of a streamed answer."""
    return (go_json(value) + "\n").encode()


def _json_kind(value: Any) -> str:
    """The word Go's decoder uses for a JSON value in its error messages."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _unmarshal_error(value: Any, field: str, go_type: str) -> Refusal:
    kind = _json_kind(value)
    return Refusal(
        400, f"json: cannot unmarshal {kind} into Go struct field {field} of type {go_type}"
    )


def parse_body(raw: bytes, schema: tuple[str, dict[str, tuple[tuple[type, ...], str]]]) -> dict:
    """Decode a request body the way gin's ShouldBindJSON does, with Go's error messages."""
    struct, fields = schema
    if not raw.strip():
        raise Refusal(400, "missing request body")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        position = getattr(exc, "pos", len(raw))
        text = raw.decode("utf-8", "replace")
        if position >= len(text.rstrip()):
            raise Refusal(400, "unexpected EOF") from None
        raise Refusal(
            400, f"invalid character '{text[position]}' looking for beginning of value"
        ) from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise Refusal(
            400, f"json: cannot unmarshal {_json_kind(body)} into Go value of type api.{struct}"
        )
    for field, (types, go_type) in fields.items():
        value = body.get(field)
        if value is None:
            continue
        wrong_bool = isinstance(value, bool) and bool not in types
        if wrong_bool or not isinstance(value, types):
            raise _unmarshal_error(value, f"{struct}.{field}", go_type)
    return body


def check_messages(messages: list[Any] | None) -> None:
    """Chat messages as Ollama's api.Message decodes them; the role must be one it knows."""
    for message in messages or []:
        if not isinstance(message, dict):
            raise _unmarshal_error(message, "ChatRequest.messages", "api.Message")
        for field in ("role", "content", "thinking", "tool_name"):
            value = message.get(field)
            if value is not None and not isinstance(value, str):
                raise _unmarshal_error(value, f"Message.messages.{field}", "string")
        if message.get("role") not in _ROLES:
            raise Refusal(400, "invalid message format")
        for image in message.get("images") or []:
            if not isinstance(image, str):
                raise _unmarshal_error(image, "Message.messages.images", "api.ImageData")
            _check_base64(image)
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            arguments = function.get("arguments") if isinstance(function, dict) else None
            if arguments is not None and not isinstance(arguments, dict):
                raise _unmarshal_error(
                    arguments,
                    "ToolCallFunction.messages.tool_calls.function.arguments",
                    "api.ToolCallFunctionArguments",
                )


def check_embed_input(raw_input: Any) -> list[str]:
    """`/api/embed`'s input: a string or a list of strings; an empty string embeds nothing."""
    if isinstance(raw_input, str):
        return [raw_input] if raw_input else []
    if isinstance(raw_input, list) and all(isinstance(i, str) for i in raw_input):
        return raw_input
    if raw_input is None:
        return []
    raise Refusal(400, "invalid input type")


def check_think(think: Any) -> None:
    """`think` is a bool or a level; anything else is refused before the model is looked up."""
    if think is not None and not isinstance(think, bool) and think not in THINK_LEVELS:
        raise Refusal(
            400,
            f"invalid think value: {go_json(think)} "
            '(must be "high", "medium", "low", "max", true, or false)',
        )


def _check_base64(data: str) -> None:
    """Images are raw base64; a `data:` URL fails here just as it does in Go."""
    for position, char in enumerate(data):
        if char not in _BASE64_ALPHABET:
            raise Refusal(400, f"illegal base64 data at input byte {position}")
    try:
        base64.b64decode(data, validate=True)
    except binascii.Error:
        raise Refusal(400, f"illegal base64 data at input byte {len(data)}") from None


def check_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """Ollama's Options.FromMap: typed keys are checked (a 500), unknown keys are ignored."""
    options = options or {}
    for key, value in options.items():
        if value is None:
            continue
        if key in _INT_OPTIONS and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise Refusal(500, f'option "{key}" must be of type integer')
        if key in _FLOAT_OPTIONS and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            raise Refusal(500, f'option "{key}" must be of type float32')
        if key == "stop":
            if not isinstance(value, list):
                raise Refusal(500, 'option "stop" must be of type array')
            if not all(isinstance(item, str) for item in value):
                raise Refusal(500, 'option "stop" must be of an array of strings')
    return {key: int(value) if key in _INT_OPTIONS else value for key, value in options.items()}


def is_zero_duration(keep_alive: Any) -> bool:
    """keep_alive 0 (a number of seconds or a Go duration such as "0s") unloads the model."""
    if isinstance(keep_alive, int | float) and not isinstance(keep_alive, bool):
        return keep_alive == 0
    return (
        isinstance(keep_alive, str)
        and re.fullmatch(r"0+(\.0*)?(ns|us|µs|ms|s|m|h)?", keep_alive) is not None
    )
