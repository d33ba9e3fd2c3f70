"""What a /v1/responses body may hold: the request fields (read from ``RESPONSES_TABLE``), the
tools, the text format, reasoning, include and metadata; the input items are checked by
``responses_items``."""

from __future__ import annotations

import re
from typing import Any

from ..errors import ApiError, bad_request
from . import checks
from .chat import REASONING_EFFORTS
from .responses_fields import HOSTED_TOOLS, INCLUDABLE, RESPONSES_TABLE
from .responses_items import input_items, non_empty_string

TOOL_CHOICES = ("none", "auto", "required")
SUMMARIES = ("auto", "concise", "detailed")
TRUNCATIONS = ("auto", "disabled")
MAX_TOP_LOGPROBS = 20
# OpenAI's metadata limits.
MAX_METADATA_KEYS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512
# Response ids this gateway makes, and OpenAI's own ("resp_" and letters, digits, _ or -).
RESPONSE_ID = re.compile(r"resp_[A-Za-z0-9_-]{1,200}")


def validate_responses_request(body: Any, *, max_items: int) -> dict[str, Any]:
    """Check a /v1/responses body; return it unchanged when it is valid."""
    body = checks.object_body(body)
    RESPONSES_TABLE.check(body)
    checks.model(body)
    input_items(body, max_items)
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
    if isinstance(choice, dict) and _is_one_of(choice.get("type"), HOSTED_TOOLS):
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
    if _is_one_of(kind, HOSTED_TOOLS) and namespace_allowed:
        return []
    if kind == "namespace" and namespace_allowed:
        non_empty_string(tool, "name", where)
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
    non_empty_string(tool, "name", where)
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
        non_empty_string(text_format, "name", "text.format")
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
        if not _is_one_of(value, INCLUDABLE):
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


def _is_one_of(value: Any, names: frozenset[str]) -> bool:
    # A list or an object cannot be looked up in a set: it is no name, not a 500.
    return isinstance(value, str) and value in names
