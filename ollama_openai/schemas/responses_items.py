"""The input items of a /v1/responses body: messages and their content parts, function calls
and their outputs, reasoning items; and, once the stored conversation is known, that every
function output answers a call."""

from __future__ import annotations

from typing import Any

from ..errors import ApiError, bad_request
from . import checks
from .messages import cache_breakpoint, data_image_url, image_detail
from .responses_fields import RESPONSES_TABLE

_ROLES = ("user", "system", "developer", "assistant")


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


def input_items(body: dict[str, Any], max_items: int) -> None:
    """``input``: a string, or at most ``max_items`` valid items; optional with
    ``previous_response_id``."""
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


def is_item_reference(item: Any) -> bool:
    """An ``item_reference``: typed so, or an item with an ``id`` and neither a ``type`` nor a
    ``role`` (the SDK's ``ItemReference`` makes ``type`` optional; a message has a role)."""
    return isinstance(item, dict) and (
        item.get("type") == "item_reference"
        or ("type" not in item and "role" not in item and "id" in item)
    )


def _item(item: Any, where: str) -> None:
    if not isinstance(item, dict):
        raise checks.wrong_type(where, "an object", item)
    kind = "item_reference" if is_item_reference(item) else item.get("type", "message")
    if not isinstance(kind, str):
        raise checks.wrong_type(f"{where}.type", "a string", kind)
    if kind == "message":
        role = item.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise bad_request(
                f"{where}.role must be one of {', '.join(_ROLES)}, got {role!r}.", f"{where}.role"
            )
        RESPONSES_TABLE.check_message(item, role, where)
        _content(item.get("content"), role, f"{where}.content")
        return
    if kind == "item_reference":
        # Replaced by the stored item it names before the request is planned (responses_routes).
        RESPONSES_TABLE.check_message(item, kind, where)
        _required_string(item, "id", where)
        return
    if kind not in RESPONSES_TABLE.message_fields:
        raise ApiError(
            400,
            f"{where}.type {kind!r} is not supported: input items are messages, function_call, "
            "function_call_output, reasoning and item_reference.",
            param=f"{where}.type",
            code="unsupported_value",
        )
    RESPONSES_TABLE.check_message(item, kind, where)
    checks.optional(item, "id", str, "a string", prefix=f"{where}.")
    if kind == "function_call":
        _required_string(item, "call_id", where)
        non_empty_string(item, "name", where)
        checks.optional(item, "namespace", str, "a string", prefix=f"{where}.")
        arguments = item.get("arguments")
        if not isinstance(arguments, str) or not isinstance(checks.json_value(arguments), dict):
            raise bad_request(
                f"{where}.arguments must be a JSON object encoded as a string.",
                f"{where}.arguments",
            )
    elif kind == "function_call_output":
        _required_string(item, "call_id", where)
        output = item.get("output")
        if not isinstance(output, str):
            _parts(output, "function_call_output", f"{where}.output", "a function output")
    else:
        _reasoning_item(item, where)


def _required_string(item: dict[str, Any], name: str, where: str) -> None:
    if item.get(name) is None:
        raise ApiError(
            400,
            f"{where}.{name} is required.",
            param=f"{where}.{name}",
            code="missing_required_parameter",
        )
    non_empty_string(item, name, where)


def non_empty_string(item: dict[str, Any], name: str, where: str) -> None:
    """``item[name]`` is a non-empty string."""
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise checks.wrong_type(f"{where}.{name}", "a non-empty string", value)


def _content(content: Any, role: str, where: str) -> None:
    if isinstance(content, str):
        return
    _parts(content, role, where, f"a {role} message")


def _parts(parts: Any, holder: str, where: str, noun: str) -> None:
    if not isinstance(parts, list):
        raise checks.wrong_type(where, "a string or an array of content parts", parts)
    for index, part in enumerate(parts):
        part_where = f"{where}.[{index}]"
        if not isinstance(part, dict):
            raise checks.wrong_type(part_where, "an object", part)
        kind = RESPONSES_TABLE.check_part(part, holder, part_where, noun)
        if kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise checks.wrong_type(f"{part_where}.image_url", "a data URL string", url)
            data_image_url(url, f"{part_where}.image_url")
            image_detail(part.get("detail"), f"{part_where}.detail")
        else:
            field = "refusal" if kind == "refusal" else "text"
            if not isinstance(part.get(field), str):
                raise checks.wrong_type(f"{part_where}.{field}", "a string", part.get(field))
        for name in ("annotations", "logprobs"):
            checks.optional(part, name, list, "an array", prefix=f"{part_where}.")
        cache_breakpoint(
            part.get("prompt_cache_breakpoint"), f"{part_where}.prompt_cache_breakpoint"
        )


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
