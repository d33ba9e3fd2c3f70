"""What a request needs its model to be able to do, checked against the capabilities Ollama's
/api/show lists, so that a request the model cannot serve fails fast with a 400 naming the field
rather than with Ollama's terser refusal (or, for images, an answer that never saw them)."""

from __future__ import annotations

from typing import Any

from ..errors import ApiError

# What each capability lets a model do, for the messages.
_WHAT = {
    "vision": "read images",
    "tools": "call tools",
    "thinking": "think (reasoning)",
    "insert": "fill in the middle (suffix)",
    "embedding": "make embeddings",
}


def needed_capabilities(body: dict[str, Any], endpoint: str) -> dict[str, str]:
    """The capabilities a validated request needs, each with the field that needs it first.

    ``endpoint``: ``chat``, ``completions``, ``responses`` or ``embeddings``.
    """
    if endpoint == "embeddings":
        return {"embedding": "model"}
    needed: dict[str, str] = {}
    image = _first_image(body)
    if image is not None:
        needed["vision"] = image
    if _offers_tools(body):
        needed["tools"] = "tools"
    thinking = _thinking_field(body)
    if thinking is not None:
        needed["thinking"] = thinking
    if body.get("suffix"):
        needed["insert"] = "suffix"
    return needed


def check_capabilities(
    needed: dict[str, str], capabilities: tuple[str, ...] | None, model: str
) -> None:
    """A 400 naming the field that needs a capability ``model`` lacks; unknown capabilities
    (an older Ollama, a failed /api/show) leave the check to Ollama."""
    if capabilities is None:
        return
    for capability, param in needed.items():
        if capability not in capabilities:
            raise ApiError(
                400,
                f"The model '{model}' does not support {capability}: it cannot "
                f"{_WHAT[capability]} (its capabilities: {', '.join(capabilities) or 'none'}).",
                param=param,
                # As OpenAI answers a field its model does not take ("Unsupported parameter");
                # an embedding from a model that makes none is a value of `model` it refuses.
                code="unsupported_value" if param == "model" else "unsupported_parameter",
            )


def _first_image(body: dict[str, Any]) -> str | None:
    """Where the first image of a chat or responses request is (``messages.[0].content.[1]``)."""
    for name in ("messages", "input"):
        items = body.get(name)
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            for key in ("content", "output"):
                parts = item.get(key)
                if not isinstance(parts, list):
                    continue
                for number, part in enumerate(parts):
                    if part.get("type") in ("image_url", "input_image"):
                        return f"{name}.[{index}].{key}.[{number}]"
    return None


def _offers_tools(body: dict[str, Any]) -> bool:
    """Whether Ollama will be offered tools: function tools (hosted ones never reach it), and
    not with ``tool_choice: "none"``."""
    offered = ("function", "namespace")
    tools = [tool for tool in body.get("tools") or [] if tool.get("type") in offered]
    return bool(tools) and body.get("tool_choice") != "none"


def _thinking_field(body: dict[str, Any]) -> str | None:
    """The field that asks the model to think, if any (``false``/``"none"`` ask for no thinking)."""
    if body.get("think") not in (None, False):
        return "think"
    if body.get("reasoning_effort") not in (None, "none"):
        return "reasoning_effort"
    effort = (body.get("reasoning") or {}).get("effort")
    if effort not in (None, "none"):
        return "reasoning.effort"
    return None
