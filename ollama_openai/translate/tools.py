"""Tools, both ways: the tools a request offers, the calls an assistant made (sent back to
Ollama), and the calls Ollama makes (to OpenAI: ids, counting indexes, the parallel cap)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any


def tools_to_ollama(
    tools: list[dict[str, Any]] | None, tool_choice: str | dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The tools to offer: none for ``"none"``, only the named one for a function choice.

    Ollama has no way to force a call, so ``"required"`` offers every tool, like ``"auto"``.
    """
    if not tools or tool_choice == "none":
        return []
    if isinstance(tool_choice, dict):
        wanted = tool_choice["function"]["name"]
        tools = [tool for tool in tools if tool["function"]["name"] == wanted]
    return [{"type": "function", "function": tool["function"]} for tool in tools]


def tool_call_to_ollama(call: dict[str, Any]) -> dict[str, Any]:
    """An assistant's earlier call as Ollama takes it: arguments as an object, not a string
    (schemas checked that the string holds a JSON object)."""
    arguments = call["function"].get("arguments") or ""
    return {
        "id": call["id"],
        "function": {
            "name": call["function"]["name"],
            "arguments": json.loads(arguments) if arguments.strip() else {},
        },
    }


def tool_calls_to_openai(
    calls: list[dict[str, Any]] | None, first_index: int = 0
) -> list[dict[str, Any]]:
    """OpenAI tool calls for Ollama's: arguments as a JSON string, an id made when none came.

    ``index`` counts up from ``first_index`` across all the calls of one answer; non-streamed
    messages drop it again, streamed deltas need it.
    """
    return [
        {
            "index": first_index + offset,
            "id": call.get("id") or f"call_{secrets.token_hex(12)}",
            "type": "function",
            "function": {
                "name": (call.get("function") or {}).get("name", ""),
                "arguments": json.dumps((call.get("function") or {}).get("arguments") or {}),
            },
        }
        for offset, call in enumerate(calls or [])
    ]


@dataclass
class ToolCallCounter:
    """The calls of one answer so far: their indexes count up across lines, and with
    ``parallel`` false only the first is kept (Ollama cannot be told to make one at most)."""

    parallel: bool = True
    made: int = 0

    def take(self, ollama_calls: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        """The OpenAI calls for the next calls Ollama made, counted and capped."""
        calls = tool_calls_to_openai(ollama_calls, first_index=self.made)
        if not self.parallel:
            calls = calls[: max(0, 1 - self.made)]
        self.made += len(calls)
        return calls
