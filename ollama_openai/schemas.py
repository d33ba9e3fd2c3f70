"""Validation of OpenAI requests: what a body may hold before it is translated.

Each ``validate_*`` function takes the parsed JSON body and either returns it unchanged or
raises a 400 ApiError whose ``param`` names the field, in OpenAI's notation
(``messages.[0].content``). Fields fall in four groups, listed in the README:
honoured, ignored (harmless, such as ``user``), refused unless left at their default, and
unknown (refused, as OpenAI itself does). Nothing a client sends is dropped silently.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import ApiError, bad_request

CHAT_ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_STOP_SEQUENCES = 4
# OpenAI's own limit; MAX_MESSAGES may lower it.
MAX_MESSAGES = 2048
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high")
TOOL_CHOICES = ("none", "auto", "required")
# Alternatives per token Ollama can list (chat's top_logprobs), and the legacy API's limit.
MAX_TOP_LOGPROBS = 20
MAX_COMPLETION_LOGPROBS = 5
# OpenAI's own limit on the inputs of one embeddings request.
MAX_EMBEDDING_INPUTS = 2048

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
    }
)

# OpenAI fields Ollama cannot honour: accepted only at the value that asks for nothing.
_CHAT_REFUSED_UNLESS_DEFAULT = {
    "logit_bias": ({},),
    "functions": ([],),
    "function_call": ("none", "auto"),
    "audio": (),
    "modalities": (["text"],),
    "prediction": (),
    "web_search_options": (),
    "verbosity": (),
}
_COMPLETION_REFUSED_UNLESS_DEFAULT = {
    "best_of": (1,),
    "logit_bias": ({},),
}

# Ollama's own knobs, reachable through the SDK's ``extra_body``.
_OLLAMA_EXTRAS = ("options", "keep_alive", "think")

_SAMPLING_FIELDS = (
    "n",
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
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "logprobs",
        "top_logprobs",
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
        "logprobs",
        "stream",
        "stream_options",
        *_SAMPLING_FIELDS,
        *_OLLAMA_EXTRAS,
    }
)
_EMBEDDING_FIELDS = frozenset(
    {"model", "input", "encoding_format", "dimensions", "keep_alive", "options", "truncate"}
)
# Message fields by role; ``refusal``, ``annotations`` (and None values) come back when a
# client appends an answer's message to its history, and change nothing.
_MESSAGE_FIELDS = {
    "system": ("role", "content", "name"),
    "developer": ("role", "content", "name"),
    "user": ("role", "content", "name"),
    "assistant": (
        "role",
        "content",
        "name",
        "tool_calls",
        "reasoning_content",
        "refusal",
        "annotations",
    ),
    "tool": ("role", "content", "tool_call_id"),
}


def validate_chat_request(
    body: Any, max_messages: int = MAX_MESSAGES, max_n: int = 8
) -> dict[str, Any]:
    """Check a /v1/chat/completions body; return it unchanged when it is valid."""
    body = _object_body(body)
    _check_fields(body, _CHAT_FIELDS, _CHAT_REFUSED_UNLESS_DEFAULT)
    _model(body)
    _messages(body, max_messages)
    _common(body)
    _integer(body, "n", 1, max_n)
    _tools(body)
    _optional(body, "logprobs", bool, "a boolean")
    _integer(body, "top_logprobs", 0, MAX_TOP_LOGPROBS)
    if body.get("top_logprobs") is not None and body.get("logprobs") is not True:
        raise bad_request("top_logprobs requires logprobs to be true.", "top_logprobs")
    _response_format(body.get("response_format"))
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        raise bad_request(
            f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}.", "reasoning_effort"
        )
    return body


def validate_completion_request(body: Any, max_n: int = 8) -> dict[str, Any]:
    """Check a /v1/completions body; return it unchanged when it is valid."""
    body = _object_body(body)
    _check_fields(body, _COMPLETION_FIELDS, _COMPLETION_REFUSED_UNLESS_DEFAULT)
    _model(body)
    prompts = _texts(body.get("prompt"), "prompt", allow_empty=True)
    _optional(body, "suffix", str, "a string")
    _optional(body, "echo", bool, "a boolean")
    _common(body)
    _integer(body, "n", 1, max_n)
    _integer(body, "logprobs", 0, MAX_COMPLETION_LOGPROBS)
    if body.get("logprobs") is not None and body.get("echo"):
        # OpenAI would score the prompt's tokens too; Ollama scores only what it generates.
        raise ApiError(
            400,
            "logprobs with echo is not supported: Ollama has no log probabilities for the "
            "prompt's tokens.",
            param="logprobs",
            code="unsupported_parameter",
        )
    # Each prompt is answered n times, each answer one upstream generation.
    if len(prompts) * (body.get("n") or 1) > max_n:
        raise bad_request(
            f"This request asks for {len(prompts)} prompts x n={body.get('n') or 1} "
            f"completions; the gateway runs at most {max_n} per request (MAX_N).",
            "n" if body.get("n") else "prompt",
        )
    return body


def validate_embedding_request(body: Any) -> dict[str, Any]:
    """Check a /v1/embeddings body; return it unchanged when it is valid."""
    body = _object_body(body)
    _check_fields(body, _EMBEDDING_FIELDS, {})
    _model(body)
    inputs = _texts(body.get("input"), "input", allow_empty=False)
    if len(inputs) > MAX_EMBEDDING_INPUTS:
        raise bad_request(
            f"input holds {len(inputs)} items; at most {MAX_EMBEDDING_INPUTS} are allowed.",
            "input",
        )
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        raise bad_request("encoding_format must be 'float' or 'base64'.", "encoding_format")
    _integer(body, "dimensions", 1)
    _optional(body, "options", dict, "an object of Ollama options")
    _optional(body, "keep_alive", (str, int), "a duration such as '5m' or a number of seconds")
    _optional(body, "truncate", bool, "a boolean")
    return body


def _texts(value: Any, param: str, allow_empty: bool) -> list[str]:
    """A string or a non-empty list of strings (prompts, embedding inputs), as a list."""
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        texts = value
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
        raise _wrong_type(param, "a string or a non-empty array of strings", value)
    if not allow_empty:
        for index, text in enumerate(texts):
            if not text:
                where = param if isinstance(value, str) else f"{param}.[{index}]"
                raise bad_request(f"{where} must not be an empty string.", where)
    return texts


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
    # Ids of the tool calls made so far: a tool message must answer one of them.
    call_ids: set[str] = set()
    for index, message in enumerate(messages):
        where = f"messages.[{index}]"
        if not isinstance(message, dict):
            raise _wrong_type(where, "an object", message)
        role = message.get("role")
        if role not in CHAT_ROLES:
            raise bad_request(
                f"{where}.role must be one of {', '.join(CHAT_ROLES)}, got {role!r}.",
                f"{where}.role",
            )
        for name, value in message.items():
            if name not in _MESSAGE_FIELDS[role] and value is not None:
                raise ApiError(
                    400,
                    f"{where}.{name} is not supported in a {role} message.",
                    param=f"{where}.{name}",
                    code="unsupported_parameter",
                )
        _content(message.get("content"), role, f"{where}.content")
        _optional(message, "name", str, "a string", prefix=f"{where}.")
        _optional(message, "reasoning_content", str, "a string", prefix=f"{where}.")
        if message.get("tool_calls") is not None:
            call_ids.update(_tool_calls(message["tool_calls"], f"{where}.tool_calls"))
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                raise _wrong_type(f"{where}.tool_call_id", "a string", call_id)
            if call_id not in call_ids:
                raise bad_request(
                    f"{where}.tool_call_id {call_id!r} answers no tool call of an earlier "
                    "assistant message.",
                    f"{where}.tool_call_id",
                )


def _tool_calls(tool_calls: Any, where: str) -> list[str]:
    """Check an assistant message's tool calls; return their ids."""
    if not isinstance(tool_calls, list):
        raise _wrong_type(where, "an array", tool_calls)
    ids = []
    for index, call in enumerate(tool_calls):
        call_where = f"{where}.[{index}]"
        if not isinstance(call, dict):
            raise _wrong_type(call_where, "an object", call)
        if call.get("type", "function") != "function":
            raise bad_request(f"{call_where}.type must be 'function'.", f"{call_where}.type")
        if not isinstance(call.get("id"), str):
            raise _wrong_type(f"{call_where}.id", "a string", call.get("id"))
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _wrong_type(f"{call_where}.function", "an object with a name", function)
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            raise _wrong_type(f"{call_where}.function.arguments", "a JSON string", arguments)
        if not isinstance(_json_object(arguments), dict):
            raise bad_request(
                f"{call_where}.function.arguments must be a JSON object encoded as a string.",
                f"{call_where}.function.arguments",
            )
        ids.append(call["id"])
    return ids


def _json_object(text: str) -> Any:
    """The value of a JSON text, or None when it is not valid JSON."""
    try:
        return json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError):
        return None


def _tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    names = []
    if tools is not None:
        if not isinstance(tools, list):
            raise _wrong_type("tools", "an array", tools)
        for index, tool in enumerate(tools):
            where = f"tools.[{index}]"
            if not isinstance(tool, dict):
                raise _wrong_type(where, "an object", tool)
            if tool.get("type") != "function":
                raise ApiError(
                    400,
                    f"{where}.type must be 'function': Ollama runs function tools only.",
                    param=f"{where}.type",
                    code="unsupported_value",
                )
            function = tool.get("function")
            if not isinstance(function, dict):
                raise _wrong_type(f"{where}.function", "an object", function)
            name = function.get("name")
            if not isinstance(name, str) or not name:
                raise _wrong_type(f"{where}.function.name", "a non-empty string", name)
            _optional(function, "description", str, "a string", prefix=f"{where}.function.")
            _optional(
                function, "parameters", dict, "a JSON schema object", prefix=f"{where}.function."
            )
            _optional(function, "strict", bool, "a boolean", prefix=f"{where}.function.")
            names.append(name)
    _optional(body, "parallel_tool_calls", bool, "a boolean")
    choice = body.get("tool_choice")
    if choice is None or choice in ("none", "auto"):
        return
    if isinstance(choice, str):
        if choice != "required":
            raise bad_request(
                f"tool_choice must be one of {', '.join(TOOL_CHOICES)} or a function.",
                "tool_choice",
            )
        wanted = None
    elif isinstance(choice, dict) and choice.get("type") == "function":
        wanted = (choice.get("function") or {}).get("name")
        if not isinstance(wanted, str):
            raise _wrong_type("tool_choice.function.name", "a string", wanted)
    else:
        raise bad_request(
            "tool_choice must be 'none', 'auto', 'required' or "
            '{"type": "function", "function": {"name": ...}}.',
            "tool_choice",
        )
    if not names:
        raise bad_request("tool_choice asks for a tool call, but tools is empty.", "tool_choice")
    if wanted is not None and wanted not in names:
        raise bad_request(
            f"tool_choice names the function {wanted!r}, which is not in tools.",
            "tool_choice.function.name",
        )


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
