"""Chat messages: roles, the fields each role may carry, content parts, inline images, and the
tool calls an assistant made and the tool results that answer them."""

from __future__ import annotations

from typing import Any

from ..errors import ApiError, bad_request
from .checks import json_value, optional, wrong_type
from .fields import FieldTable

# The values of the SDK's image ``detail`` and of a cache breakpoint's ``ttl``.
IMAGE_DETAILS = ("auto", "low", "high", "original")
CACHE_TTLS = ("30m", "12h")


def messages(body: dict[str, Any], max_messages: int, table: FieldTable) -> None:
    """``messages``: a non-empty list of at most ``max_messages`` valid messages, each tool
    result answering a call an earlier assistant message made."""
    found = body.get("messages")
    if found is None:
        raise ApiError(
            400, "messages is required.", param="messages", code="missing_required_parameter"
        )
    if not isinstance(found, list) or not found:
        raise wrong_type("messages", "a non-empty array", found)
    if len(found) > max_messages:
        raise bad_request(
            f"messages holds {len(found)} messages; this gateway takes at most "
            f"{max_messages} (MAX_MESSAGES).",
            "messages",
            "array_above_max_length",
        )
    # Ids of the tool calls made so far: a tool message must answer one of them.
    call_ids: set[str] = set()
    for index, message in enumerate(found):
        _message(message, f"messages.[{index}]", call_ids, table)


def _message(message: Any, where: str, call_ids: set[str], table: FieldTable) -> None:
    if not isinstance(message, dict):
        raise wrong_type(where, "an object", message)
    role = message.get("role")
    if not isinstance(role, str) or role not in table.message_fields:
        roles = ", ".join(table.message_fields)
        raise bad_request(f"{where}.role must be one of {roles}, got {role!r}.", f"{where}.role")
    table.check_message(message, role, where)
    _content(message.get("content"), role, f"{where}.content", table)
    optional(message, "name", str, "a string", prefix=f"{where}.")
    optional(message, "reasoning_content", str, "a string", prefix=f"{where}.")
    if message.get("tool_calls") is not None:
        call_ids.update(_tool_calls(message["tool_calls"], f"{where}.tool_calls"))
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str):
            raise wrong_type(f"{where}.tool_call_id", "a string", call_id)
        if call_id not in call_ids:
            raise bad_request(
                f"{where}.tool_call_id {call_id!r} answers no tool call of an earlier "
                "assistant message.",
                f"{where}.tool_call_id",
            )


def _tool_calls(tool_calls: Any, where: str) -> list[str]:
    """Check an assistant message's tool calls; return their ids."""
    if not isinstance(tool_calls, list):
        raise wrong_type(where, "an array", tool_calls)
    ids = []
    for index, call in enumerate(tool_calls):
        call_where = f"{where}.[{index}]"
        if not isinstance(call, dict):
            raise wrong_type(call_where, "an object", call)
        if call.get("type", "function") != "function":
            raise bad_request(f"{call_where}.type must be 'function'.", f"{call_where}.type")
        if not isinstance(call.get("id"), str):
            raise wrong_type(f"{call_where}.id", "a string", call.get("id"))
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise wrong_type(f"{call_where}.function", "an object with a name", function)
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            raise wrong_type(f"{call_where}.function.arguments", "a JSON string", arguments)
        if not isinstance(json_value(arguments), dict):
            raise bad_request(
                f"{call_where}.function.arguments must be a JSON object encoded as a string.",
                f"{call_where}.function.arguments",
            )
        ids.append(call["id"])
    return ids


def _content(content: Any, role: str, where: str, table: FieldTable) -> None:
    if isinstance(content, str) or (content is None and role == "assistant"):
        return
    if not isinstance(content, list):
        raise wrong_type(where, "a string or an array of content parts", content)
    for index, part in enumerate(content):
        part_where = f"{where}.[{index}]"
        if not isinstance(part, dict):
            raise wrong_type(part_where, "an object", part)
        kind = table.check_part(part, role, part_where, f"a {role} message")
        if kind == "image_url":
            image = image_url(part.get("image_url"), f"{part_where}.image_url")
            image_detail(image.get("detail"), f"{part_where}.image_url.detail")
        else:
            # A text part's text, a refusal part's refusal.
            text = part.get(kind)
            if not isinstance(text, str):
                raise wrong_type(f"{part_where}.{kind}", "a string", text)
        cache_breakpoint(
            part.get("prompt_cache_breakpoint"), f"{part_where}.prompt_cache_breakpoint"
        )


def image_detail(detail: Any, param: str) -> None:
    """An image's ``detail``: ignored, since Ollama has one resolution, but one of OpenAI's."""
    if detail is not None and detail not in IMAGE_DETAILS:
        raise bad_request(
            f"{param} must be one of {', '.join(IMAGE_DETAILS)}, got {detail!r}.", param
        )


def cache_breakpoint(breakpoint: Any, param: str) -> None:
    """A part's ``prompt_cache_breakpoint``: ignored, since Ollama caches the prefix itself,
    but of OpenAI's shape (its unknown keys the field table has refused already)."""
    if breakpoint is None:
        return
    if not isinstance(breakpoint, dict):
        raise wrong_type(param, "an object", breakpoint)
    if breakpoint.get("mode") is None:
        raise ApiError(
            400,
            f"{param}.mode is required.",
            param=f"{param}.mode",
            code="missing_required_parameter",
        )
    if breakpoint["mode"] != "explicit":
        raise bad_request(f"{param}.mode must be 'explicit'.", f"{param}.mode")
    ttl = breakpoint.get("ttl")
    if ttl is not None and ttl not in CACHE_TTLS:
        raise bad_request(
            f"{param}.ttl must be one of {', '.join(CACHE_TTLS)}, got {ttl!r}.", f"{param}.ttl"
        )


def image_url(image: Any, where: str) -> dict[str, Any]:
    """An image part's ``{"url": ...}``: an inline base64 data URL, never a link."""
    if not isinstance(image, dict) or not isinstance(image.get("url"), str):
        raise wrong_type(where, "an object with a url string", image)
    data_image_url(image["url"], f"{where}.url")
    return image


def data_image_url(url: str, param: str) -> None:
    """An image as an inline base64 data URL; a link is refused, never fetched."""
    if not url.startswith("data:image/"):
        # Fetching a client-supplied URL would let any caller make the gateway request
        # arbitrary hosts; images must travel inline.
        raise ApiError(
            400,
            "Only inline images are supported: send a data:image/...;base64, URL, "
            "not a link the gateway would have to fetch.",
            param=param,
            code="invalid_image_url",
        )
    header, _, data = url.partition(",")
    if not header.endswith(";base64") or not data:
        raise bad_request(
            "An image data URL must be base64: data:image/png;base64,<data>.",
            param,
            "invalid_image_url",
        )
