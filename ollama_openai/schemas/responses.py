"""What a /v1/responses body may hold: the request fields (read from ``RESPONSES_TABLE``), the
input items, the tools; and, once the stored conversation is known, that every function
output answers a call."""

from __future__ import annotations

import re
from typing import Any

from ..errors import ApiError, bad_request
from . import checks
from .chat import REASONING_EFFORTS
from .messages import data_image_url
from .responses_fields import HOSTED_TOOLS, INCLUDABLE, RESPONSES_TABLE

TOOL_CHOICES = ("none", "auto", "required")
SUMMARIES = ("auto", "concise", "detailed")
TRUNCATIONS = ("auto", "disabled")
MAX_TOP_LOGPROBS = 20
# OpenAI's metadata limits.
MAX_METADATA_KEYS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512
# Response ids this gateway makes, and OpenAI's own ("resp_" and letters, digits, _ or -).
RESPONSE_ID = re.compile(r"resp_[A-Za-z0-9_-]{1,200}")
_PARTS = {
    "user": ("input_text", "input_image"),
    "system": ("input_text",),
    "developer": ("input_text",),
    "assistant": ("output_text", "refusal", "input_text"),
}


def validate_responses_request(body: Any, *, max_items: int) -> dict[str, Any]:
    """Check a /v1/responses body; return it unchanged when it is valid."""
    body = checks.object_body(body)
    RESPONSES_TABLE.check(body)
    checks.model(body)
    _input(body, max_items)
    checks.optional(body, "instructions", str, "a string")
    checks.optional(body, "stream", bool, "a boolean")
    checks.stream_options(body, RESPONSES_TABLE)
    checks.number(body, "temperature", 0, 2)
    checks.number(body, "top_p", 0, 1)
    checks.integer(body, "max_output_tokens", 1, 2**63 - 1)
    checks.integer(body, "top_logprobs", 0, MAX_TOP_LOGPROBS)
    checks.optional(body, "parallel_tool_calls", bool, "a boolean")
    checks.optional(body, "store", bool, "a boolean")
    _tools(body)
    _text(body.get("text"))
    _reasoning(body.get("reasoning"))
    _include(body.get("include"))
    _previous_response_id(body.get("previous_response_id"))
    _metadata(body.get("metadata"))
    truncation = body.get("truncation")
    if truncation is not None and truncation not in TRUNCATIONS:
        raise bad_request("truncation must be 'auto' or 'disabled'.", "truncation")
    checks.ollama_extras(body)
    return body


def check_function_outputs(history: list[dict[str, Any]], items: list[dict[str, Any]]) -> None:
    """Each ``function_call_output`` of the new input answers a call made before it, in the
    stored conversation or earlier in the input."""
    calls = {item["call_id"] for item in history if item.get("type") == "function_call"}
    for index, item in enumerate(items):
        kind = item.get("type", "message")
        if kind == "function_call":
            calls.add(item["call_id"])
        elif kind == "function_call_output" and item["call_id"] not in calls:
            raise bad_request(
                f"No tool call found for function call output with call_id {item['call_id']!r}: "
                "it answers no function_call of the conversation.",
                f"input.[{index}].call_id",
            )


def _input(body: dict[str, Any], max_items: int) -> None:
    value = body.get("input")
    if value is None:
        if body.get("previous_response_id") is None:
            raise ApiError(
                400, "input is required.", param="input", code="missing_required_parameter"
            )
        return
    if isinstance(value, str):
        return
    if not isinstance(value, list):
        raise checks.wrong_type("input", "a string or an array of input items", value)
    if len(value) > max_items:
        raise bad_request(
            f"input holds {len(value)} items; this gateway takes at most {max_items} "
            "(MAX_MESSAGES).",
            "input",
            "array_above_max_length",
        )
    for index, item in enumerate(value):
        _item(item, f"input.[{index}]")


def _item(item: Any, where: str) -> None:
    if not isinstance(item, dict):
        raise checks.wrong_type(where, "an object", item)
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if not isinstance(role, str) or role not in _PARTS:
            raise bad_request(
                f"{where}.role must be one of {', '.join(_PARTS)}, got {role!r}.", f"{where}.role"
            )
        RESPONSES_TABLE.check_message(item, role, where)
        _content(item.get("content"), role, f"{where}.content")
        return
    if kind not in RESPONSES_TABLE.message_fields:
        raise ApiError(
            400,
            f"{where}.type {kind!r} is not supported: input items are messages, function_call, "
            "function_call_output and reasoning (refer to earlier items with "
            "previous_response_id).",
            param=f"{where}.type",
            code="unsupported_value",
        )
    RESPONSES_TABLE.check_message(item, kind, where)
    checks.optional(item, "id", str, "a string", prefix=f"{where}.")
    if kind == "function_call":
        _call_id(item, where)
        _string(item, "name", where)
        checks.optional(item, "namespace", str, "a string", prefix=f"{where}.")
        arguments = item.get("arguments")
        if not isinstance(arguments, str) or not isinstance(checks.json_value(arguments), dict):
            raise bad_request(
                f"{where}.arguments must be a JSON object encoded as a string.",
                f"{where}.arguments",
            )
    elif kind == "function_call_output":
        _call_id(item, where)
        output = item.get("output")
        if not isinstance(output, str):
            _parts(output, ("input_text", "input_image"), f"{where}.output", "a function output")
    else:
        _reasoning_item(item, where)


def _call_id(item: dict[str, Any], where: str) -> None:
    if item.get("call_id") is None:
        raise ApiError(
            400,
            f"{where}.call_id is required.",
            param=f"{where}.call_id",
            code="missing_required_parameter",
        )
    _string(item, "call_id", where)


def _string(item: dict[str, Any], name: str, where: str) -> None:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise checks.wrong_type(f"{where}.{name}", "a non-empty string", value)


def _content(content: Any, role: str, where: str) -> None:
    if isinstance(content, str):
        return
    _parts(content, _PARTS[role], where, f"a {role} message")


def _parts(parts: Any, allowed: tuple[str, ...], where: str, holder: str) -> None:
    if not isinstance(parts, list):
        raise checks.wrong_type(where, "a string or an array of content parts", parts)
    for index, part in enumerate(parts):
        part_where = f"{where}.[{index}]"
        if not isinstance(part, dict):
            raise checks.wrong_type(part_where, "an object", part)
        kind = part.get("type")
        if kind not in allowed:
            raise bad_request(
                f"{part_where}.type {kind!r} is not supported in {holder}; "
                f"use {', '.join(allowed)}.",
                f"{part_where}.type",
            )
        if kind == "input_image":
            if part.get("file_id") is not None:
                raise ApiError(
                    400,
                    "Files are stored at OpenAI: send the image inline as a "
                    "data:image/...;base64, URL.",
                    param=f"{part_where}.file_id",
                    code="unsupported_parameter",
                )
            url = part.get("image_url")
            if not isinstance(url, str):
                raise checks.wrong_type(f"{part_where}.image_url", "a data URL string", url)
            data_image_url(url, f"{part_where}.image_url")
        else:
            field = "refusal" if kind == "refusal" else "text"
            if not isinstance(part.get(field), str):
                raise checks.wrong_type(f"{part_where}.{field}", "a string", part.get(field))


def _reasoning_item(item: dict[str, Any], where: str) -> None:
    for name, kind in (("summary", "summary_text"), ("content", "reasoning_text")):
        parts = item.get(name)
        if parts is None:
            continue
        if not isinstance(parts, list):
            raise checks.wrong_type(f"{where}.{name}", "an array", parts)
        for index, part in enumerate(parts):
            part_where = f"{where}.{name}.[{index}]"
            if not isinstance(part, dict) or part.get("type") != kind:
                raise bad_request(f"{part_where} must be a {kind} part.", part_where)
            if not isinstance(part.get("text"), str):
                raise checks.wrong_type(f"{part_where}.text", "a string", part.get("text"))
    checks.optional(item, "encrypted_content", str, "a string", prefix=f"{where}.")


def _tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    names: list[str] = []
    if tools is not None:
        if not isinstance(tools, list):
            raise checks.wrong_type("tools", "an array", tools)
        for index, tool in enumerate(tools):
            names += _tool(tool, f"tools.[{index}]", namespace_allowed=True)
    choice = body.get("tool_choice")
    if choice is None or choice in TOOL_CHOICES:
        return
    if isinstance(choice, dict) and choice.get("type") == "function":
        wanted = choice.get("name")
        if not isinstance(wanted, str):
            raise checks.wrong_type("tool_choice.name", "a string", wanted)
        if wanted not in names:
            raise bad_request(
                f"tool_choice names the function {wanted!r}, which is not in tools.",
                "tool_choice.name",
            )
        return
    if isinstance(choice, dict) and choice.get("type") in HOSTED_TOOLS:
        raise ApiError(
            400,
            f"tool_choice asks for the hosted tool {choice['type']!r}, which only OpenAI can run.",
            param="tool_choice",
            code="unsupported_value",
        )
    raise bad_request(
        "tool_choice must be 'none', 'auto', 'required' or "
        '{"type": "function", "name": ...}.',
        "tool_choice",
    )


def _tool(tool: Any, where: str, namespace_allowed: bool) -> list[str]:
    """Check one tool; return the function names it offers."""
    if not isinstance(tool, dict):
        raise checks.wrong_type(where, "an object", tool)
    kind = tool.get("type")
    if kind in HOSTED_TOOLS and namespace_allowed:
        return []
    if kind == "namespace" and namespace_allowed:
        _string(tool, "name", where)
        inner = tool.get("tools")
        if not isinstance(inner, list):
            raise checks.wrong_type(f"{where}.tools", "an array of function tools", inner)
        names = []
        for index, function in enumerate(inner):
            names += _tool(function, f"{where}.tools.[{index}]", namespace_allowed=False)
        return names
    if kind != "function":
        raise ApiError(
            400,
            f"{where}.type {kind!r} is not supported: the gateway runs function and namespace "
            "tools, and leaves hosted tools to OpenAI.",
            param=f"{where}.type",
            code="unsupported_value",
        )
    _string(tool, "name", where)
    checks.optional(tool, "description", str, "a string", prefix=f"{where}.")
    checks.optional(tool, "parameters", dict, "a JSON schema object", prefix=f"{where}.")
    checks.optional(tool, "strict", bool, "a boolean", prefix=f"{where}.")
    return [tool["name"]]


def _text(text: Any) -> None:
    if text is None:
        return
    if not isinstance(text, dict):
        raise checks.wrong_type("text", "an object", text)
    RESPONSES_TABLE.check(text, "text")
    text_format = text.get("format")
    if text_format is None:
        return
    if not isinstance(text_format, dict):
        raise checks.wrong_type("text.format", "an object", text_format)
    kind = text_format.get("type")
    if kind == "json_schema":
        _string(text_format, "name", "text.format")
        checks.optional(text_format, "schema", dict, "a JSON schema object", prefix="text.format.")
        checks.optional(text_format, "strict", bool, "a boolean", prefix="text.format.")
    elif kind not in ("text", "json_object"):
        raise bad_request(
            "text.format.type must be 'text', 'json_object' or 'json_schema'.", "text.format.type"
        )


def _reasoning(reasoning: Any) -> None:
    if reasoning is None:
        return
    if not isinstance(reasoning, dict):
        raise checks.wrong_type("reasoning", "an object", reasoning)
    RESPONSES_TABLE.check(reasoning, "reasoning")
    effort = reasoning.get("effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        raise bad_request(
            f"reasoning.effort must be one of {', '.join(REASONING_EFFORTS)}.", "reasoning.effort"
        )
    for name in ("summary", "generate_summary"):
        value = reasoning.get(name)
        if value is not None and value not in SUMMARIES:
            raise bad_request(
                f"reasoning.{name} must be one of {', '.join(SUMMARIES)}.", f"reasoning.{name}"
            )


def _include(include: Any) -> None:
    if include is None:
        return
    if not isinstance(include, list):
        raise checks.wrong_type("include", "an array of strings", include)
    for index, value in enumerate(include):
        if value not in INCLUDABLE:
            raise bad_request(
                f"include.[{index}] must be one of {', '.join(sorted(INCLUDABLE))}, got {value!r}.",
                f"include.[{index}]",
            )


def _previous_response_id(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not RESPONSE_ID.fullmatch(value):
        raise bad_request(
            "previous_response_id must be a response id such as 'resp_abc123'.",
            "previous_response_id",
        )


def _metadata(metadata: Any) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise checks.wrong_type("metadata", "an object of strings", metadata)
    if len(metadata) > MAX_METADATA_KEYS:
        raise bad_request(f"metadata holds at most {MAX_METADATA_KEYS} keys.", "metadata")
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY or not isinstance(value, str):
            raise bad_request(
                f"metadata keys are strings of at most {MAX_METADATA_KEY} characters, values "
                f"strings of at most {MAX_METADATA_VALUE}.",
                f"metadata.{key}"[:100],
            )
        if len(value) > MAX_METADATA_VALUE:
            raise bad_request(
                f"metadata values are at most {MAX_METADATA_VALUE} characters.",
                f"metadata.{key}",
            )
