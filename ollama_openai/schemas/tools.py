"""Function tools a chat request offers, ``tool_choice`` and ``parallel_tool_calls``."""

from __future__ import annotations

from typing import Any

from ..errors import ApiError, bad_request
from .checks import optional, wrong_type

TOOL_CHOICES = ("none", "auto", "required")


def tools(body: dict[str, Any]) -> None:
    """``tools`` (function tools only), and a ``tool_choice`` that names one of them."""
    names = _function_names(body.get("tools"))
    optional(body, "parallel_tool_calls", bool, "a boolean")
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
        optional(choice, "function", dict, "an object", prefix="tool_choice.")
        wanted = (choice.get("function") or {}).get("name")
        if not isinstance(wanted, str):
            raise wrong_type("tool_choice.function.name", "a string", wanted)
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


def _function_names(found: Any) -> list[str]:
    """Check the tools; return their function names."""
    if found is None:
        return []
    if not isinstance(found, list):
        raise wrong_type("tools", "an array", found)
    names = []
    for index, tool in enumerate(found):
        where = f"tools.[{index}]"
        if not isinstance(tool, dict):
            raise wrong_type(where, "an object", tool)
        if tool.get("type") != "function":
            raise ApiError(
                400,
                f"{where}.type must be 'function': Ollama runs function tools only.",
                param=f"{where}.type",
                code="unsupported_value",
            )
        function = tool.get("function")
        if not isinstance(function, dict):
            raise wrong_type(f"{where}.function", "an object", function)
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise wrong_type(f"{where}.function.name", "a non-empty string", name)
        prefix = f"{where}.function."
        optional(function, "description", str, "a string", prefix=prefix)
        optional(function, "parameters", dict, "a JSON schema object", prefix=prefix)
        optional(function, "strict", bool, "a boolean", prefix=prefix)
        names.append(name)
    return names
