"""Validation of OpenAI requests: what a body may hold before it is translated.

Each ``validate_*`` function takes the parsed JSON body and either returns it unchanged or
raises a 400 ApiError whose ``param`` names the field, in OpenAI's notation
(``messages.[0].content``). Fields fall in four groups, listed in the README:
honoured, ignored (harmless, such as ``user``), refused unless left at their default, and
unknown (refused, as OpenAI itself does). Nothing a client sends is dropped silently.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ApiError, bad_request

CHAT_ROLES = ("system", "developer", "user", "assistant")
MAX_STOP_SEQUENCES = 4
# OpenAI's own limit; MAX_MESSAGES may lower it.
MAX_MESSAGES = 2048
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high")

# Harmless to ignore: they steer OpenAI's billing, storage or caching, not the answer.
IGNORED_FIELDS = frozenset(
    {
        "user",
        "store",
        "metadata",
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "parallel_tool_calls",
    }
)

# OpenAI fields Ollama cannot honour: accepted only at the value that asks for nothing.
_CHAT_REFUSED_UNLESS_DEFAULT = {
    "n": (1,),
    "logprobs": (False,),
    "top_logprobs": (),
    "logit_bias": ({},),
    "tools": ([],),
    "tool_choice": ("none", "auto"),
    "functions": ([],),
    "function_call": ("none", "auto"),
    "audio": (),
    "modalities": (["text"],),
    "prediction": (),
    "web_search_options": (),
    "verbosity": (),
}
_COMPLETION_REFUSED_UNLESS_DEFAULT = {
    "n": (1,),
    "best_of": (1,),
    "logprobs": (0,),
    "logit_bias": ({},),
}

# Ollama's own knobs, reachable through the SDK's ``extra_body``.
_OLLAMA_EXTRAS = ("options", "keep_alive", "think")

_SAMPLING_FIELDS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "frequency_penalty",
    "presence_penalty",
)
_CHAT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "response_format",
        "reasoning_effort",
        *_SAMPLING_FIELDS,
        *_OLLAMA_EXTRAS,
    }
)
_COMPLETION_FIELDS = frozenset(
    {
        "model",
        "prompt",
        "suffix",
        "echo",
        "stream",
        "stream_options",
        *_SAMPLING_FIELDS,
        *_OLLAMA_EXTRAS,
    }
)


def validate_chat_request(body: Any, max_messages: int = MAX_MESSAGES) -> dict[str, Any]:
    """Check a /v1/chat/completions body; return it unchanged when it is valid."""
    body = _object_body(body)
    _check_fields(body, _CHAT_FIELDS, _CHAT_REFUSED_UNLESS_DEFAULT)
    _model(body)
    _messages(body, max_messages)
    _common(body)
    _response_format(body.get("response_format"))
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        raise bad_request(
            f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}.", "reasoning_effort"
        )
    return body


def validate_completion_request(body: Any) -> dict[str, Any]:
    """Check a /v1/completions body; return it unchanged when it is valid."""
    body = _object_body(body)
    _check_fields(body, _COMPLETION_FIELDS, _COMPLETION_REFUSED_UNLESS_DEFAULT)
    _model(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        pass
    elif isinstance(prompt, list):
        raise ApiError(
            400,
            "prompt must be a string or a list of one string; token arrays and several "
            "prompts per request are not supported yet.",
            param="prompt",
            code="unsupported_value",
        )
    elif not isinstance(prompt, str):
        raise _wrong_type("prompt", "a string", prompt)
    _optional(body, "suffix", str, "a string")
    _optional(body, "echo", bool, "a boolean")
    _common(body)
    return body


def _object_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", None, "invalid_type")
    return body


def _check_fields(
    body: dict[str, Any], known: frozenset[str], refused: dict[str, tuple[Any, ...]]
) -> None:
    for name, value in body.items():
        if name in known or name in IGNORED_FIELDS or value is None:
            continue
        if name in refused:
            if value in refused[name]:
                continue
            raise ApiError(
                400,
                f"{name}={value!r} is not supported by this gateway (Ollama cannot honour it).",
                param=name,
                code="unsupported_parameter",
            )
        raise ApiError(
            400,
            f"Unrecognized request argument supplied: {name}",
            param=name,
            code="unknown_parameter",
        )


def _model(body: dict[str, Any]) -> None:
    model = body.get("model")
    if model is None:
        raise ApiError(
            400,
            "you must provide a model parameter",
            param="model",
            code="missing_required_parameter",
        )
    if not isinstance(model, str) or not model.strip():
        raise _wrong_type("model", "a non-empty string", model)
    if not _is_unicode(model):
        raise bad_request("model must be valid Unicode text (no lone surrogates).", "model")


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _messages(body: dict[str, Any], max_messages: int) -> None:
    messages = body.get("messages")
    if messages is None:
        raise ApiError(
            400, "messages is required.", param="messages", code="missing_required_parameter"
        )
    if not isinstance(messages, list) or not messages:
        raise _wrong_type("messages", "a non-empty array", messages)
    if len(messages) > max_messages:
        raise bad_request(
            f"messages holds {len(messages)} messages; this gateway takes at most "
            f"{max_messages} (MAX_MESSAGES).",
            "messages",
            "array_above_max_length",
        )
    for index, message in enumerate(messages):
        where = f"messages.[{index}]"
        if not isinstance(message, dict):
            raise _wrong_type(where, "an object", message)
        role = message.get("role")
        if role not in CHAT_ROLES:
            hint = " Tool messages are not supported yet." if role in ("tool", "function") else ""
            raise bad_request(
                f"{where}.role must be one of {', '.join(CHAT_ROLES)}, got {role!r}.{hint}",
                f"{where}.role",
            )
        for name in message:
            if name not in ("role", "content", "name"):
                raise ApiError(
                    400,
                    f"{where}.{name} is not supported.",
                    param=f"{where}.{name}",
                    code="unsupported_parameter",
                )
        _content(message.get("content"), role, f"{where}.content")
        _optional(message, "name", str, "a string", prefix=f"{where}.")


def _content(content: Any, role: str, where: str) -> None:
    if isinstance(content, str) or (content is None and role == "assistant"):
        return
    if not isinstance(content, list):
        raise _wrong_type(where, "a string or an array of content parts", content)
    for index, part in enumerate(content):
        part_where = f"{where}.[{index}]"
        if not isinstance(part, dict):
            raise _wrong_type(part_where, "an object", part)
        kind = part.get("type")
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise _wrong_type(f"{part_where}.text", "a string", part.get("text"))
        elif kind == "image_url" and role == "user":
            _image_url(part.get("image_url"), f"{part_where}.image_url")
        else:
            raise bad_request(
                f"{part_where}.type {kind!r} is not supported in a {role} message.",
                f"{part_where}.type",
            )


def _image_url(image: Any, where: str) -> None:
    if not isinstance(image, dict) or not isinstance(image.get("url"), str):
        raise _wrong_type(where, "an object with a url string", image)
    url = image["url"]
    if not url.startswith("data:image/"):
        # Fetching a client-supplied URL would let any caller make the gateway request
        # arbitrary hosts; images must travel inline.
        raise ApiError(
            400,
            "Only inline images are supported: send a data:image/...;base64, URL, "
            "not a link the gateway would have to fetch.",
            param=f"{where}.url",
            code="invalid_image_url",
        )
    header, _, data = url.partition(",")
    if not header.endswith(";base64") or not data:
        raise bad_request(
            "An image data URL must be base64: data:image/png;base64,<data>.",
            f"{where}.url",
            "invalid_image_url",
        )


def _common(body: dict[str, Any]) -> None:
    _optional(body, "stream", bool, "a boolean")
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    _number(body, "frequency_penalty", -2, 2)
    _number(body, "presence_penalty", -2, 2)
    # Ollama reads integers as Go int64: anything larger fails upstream instead of here.
    _integer(body, "max_tokens", 1, 2**63 - 1)
    _integer(body, "max_completion_tokens", 1, 2**63 - 1)
    _integer(body, "seed", -(2**63), 2**63 - 1)
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        raise bad_request(
            "Set max_tokens or max_completion_tokens, not both.", "max_completion_tokens"
        )
    _stop(body.get("stop"))
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise _wrong_type("stream_options", "an object", options)
        if body.get("stream") is not True:
            raise bad_request(
                "stream_options is only allowed when stream is true.", "stream_options"
            )
        for name, value in options.items():
            if name != "include_usage":
                raise ApiError(
                    400,
                    f"stream_options.{name} is not supported.",
                    param=f"stream_options.{name}",
                    code="unsupported_parameter",
                )
            if not isinstance(value, bool):
                raise _wrong_type("stream_options.include_usage", "a boolean", value)
    _optional(body, "options", dict, "an object of Ollama options")
    _optional(body, "keep_alive", (str, int), "a duration such as '5m' or a number of seconds")
    think = body.get("think")
    if think is not None and think not in (True, False, "low", "medium", "high"):
        raise bad_request("think must be true, false, 'low', 'medium' or 'high'.", "think")


def _stop(stop: Any) -> None:
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(item, str) for item in stop):
        raise _wrong_type("stop", "a string or an array of strings", stop)
    if len(stop) > MAX_STOP_SEQUENCES:
        raise bad_request(f"stop takes at most {MAX_STOP_SEQUENCES} sequences.", "stop")


def _response_format(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise _wrong_type("response_format", "an object", value)
    kind = value.get("type")
    if kind in ("text", "json_object"):
        return
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise _wrong_type("response_format.json_schema", "an object with a schema", spec)
        return
    raise bad_request(
        "response_format.type must be 'text', 'json_object' or 'json_schema'.",
        "response_format.type",
    )


def _number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _wrong_type(name, "a number", value)
    if not low <= value <= high:
        raise bad_request(f"{name} must be between {low} and {high}, got {value}.", name)


def _integer(body: dict[str, Any], name: str, low: int, high: int | None = None) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(name, "an integer", value)
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"between {low} and {high}"
        raise bad_request(f"{name} must be {bound}, got {value}.", name)


def _optional(
    body: dict[str, Any], name: str, kind: type | tuple[type, ...], expected: str, prefix: str = ""
) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) and kind is not bool:
        raise _wrong_type(prefix + name, expected, value)
    if not isinstance(value, kind):
        raise _wrong_type(prefix + name, expected, value)


def _wrong_type(param: str, expected: str, value: Any) -> ApiError:
    got = "null" if value is None else type(value).__name__
    return bad_request(f"{param} must be {expected}, got {got}.", param, "invalid_type")
