"""The Responses API's input side: input items and tools -> the OpenAI chat request that
``chat.chat_request_to_ollama`` turns into Ollama's payload, so Responses and chat share every
rule (options, tools, reasoning, formats).

Bodies arrive validated by ``schemas.responses``. Items are the Responses API's: ``message``
(roles user, assistant, system, developer), ``function_call``, ``function_call_output`` and
``reasoning``; a conversation is the stored items of earlier turns followed by the new ones.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from .stored_items import item_id

# What ``encrypted_content`` holds here: the reasoning text, readable only by this gateway's
# code (Ollama has no encrypted reasoning); a client that keeps no state sends it back.
_ENCRYPTED_PREFIX = "ollama-openai:v1:"


def input_items(body: dict[str, Any], response_id: str) -> list[dict[str, Any]]:
    """The request's ``input`` as items with ids (an item without one gets one of the response
    ``response_id``): a string is one user message, a message's string content becomes one text
    part, as OpenAI lists input items."""
    raw = body.get("input")
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [{"type": "message", "role": "user", "content": raw}]
    items = []
    for index, item in enumerate(raw):
        item = {"type": "message", **item}
        if item["type"] == "message" and isinstance(item["content"], str):
            kind = "output_text" if item["role"] == "assistant" else "input_text"
            item["content"] = [{"type": kind, "text": item["content"]}]
        item.setdefault("id", item_id(response_id, item["type"], index))
        items.append(item)
    return items


@dataclass
class ToolNames:
    """Function names as the model sees them, and back: a ``namespace`` tool's functions are
    offered flat, under their own name unless another function has it (then
    ``namespace.name``), and the calls the model makes name their namespace again."""

    # Model-side name -> (namespace or None, function name).
    by_model_name: dict[str, tuple[str | None, str]] = field(default_factory=dict)

    def add(self, namespace: str | None, name: str) -> str:
        model_name = name if name not in self.by_model_name else f"{namespace}.{name}"
        self.by_model_name[model_name] = (namespace, name)
        return model_name

    def model_name(self, namespace: str | None, name: str) -> str:
        """The name the model knows a function by (a call in the history names it)."""
        for model_name, known in self.by_model_name.items():
            if known == (namespace, name):
                return model_name
        return name

    def call_fields(self, model_name: str) -> dict[str, str]:
        """``name`` (and ``namespace``) of a function_call item for a call the model made."""
        namespace, name = self.by_model_name.get(model_name, (None, model_name))
        return {"name": name} if namespace is None else {"name": name, "namespace": namespace}


def tools_to_chat(tools: list[dict[str, Any]] | None) -> tuple[list[dict[str, Any]], ToolNames]:
    """Chat's function tools for the Responses tools; hosted tools (web search, file search,
    code interpreter...) cannot run here and are not offered to the model."""
    names = ToolNames()
    chat_tools = []
    for tool in tools or []:
        if tool["type"] == "function":
            chat_tools.append(_function(tool, names.add(None, tool["name"])))
        elif tool["type"] == "namespace":
            for inner in tool.get("tools") or []:
                chat_tools.append(_function(inner, names.add(tool["name"], inner["name"])))
    return chat_tools, names


def _function(tool: dict[str, Any], model_name: str) -> dict[str, Any]:
    function = {"name": model_name}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}


def tool_choice_to_chat(choice: Any, names: ToolNames) -> Any:
    """Chat's ``tool_choice``: the same words, and a named function in chat's shape."""
    if isinstance(choice, dict) and choice.get("type") == "function":
        model_name = names.model_name(choice.get("namespace"), choice["name"])
        return {"type": "function", "function": {"name": model_name}}
    return choice


def items_to_messages(items: list[dict[str, Any]], names: ToolNames) -> list[dict[str, Any]]:
    """Chat messages for a conversation's items.

    An assistant turn's items (reasoning, text, function calls) become one assistant message,
    as Ollama expects: reasoning as its thinking, calls as its ``tool_calls``.
    """
    messages: list[dict[str, Any]] = []
    turn: dict[str, Any] | None = None
    for item in items:
        kind = item.get("type", "message")
        assistant_part = kind in ("reasoning", "function_call") or (
            kind == "message" and item["role"] == "assistant"
        )
        if not assistant_part:
            turn = None
            messages.append(_message(item) if kind == "message" else _tool_result(item))
            continue
        if turn is None or (kind == "reasoning" and (turn["content"] or turn["tool_calls"])):
            turn = {"role": "assistant", "content": "", "reasoning_content": "", "tool_calls": []}
            messages.append(turn)
        if kind == "reasoning":
            turn["reasoning_content"] += reasoning_text(item)
        elif kind == "message":
            turn["content"] += _text(item["content"])
        else:
            model_name = names.model_name(item.get("namespace"), item["name"])
            function = {"name": model_name, "arguments": item.get("arguments") or "{}"}
            turn["tool_calls"].append(
                {"id": item["call_id"], "type": "function", "function": function}
            )
    return messages


def _message(item: dict[str, Any]) -> dict[str, Any]:
    parts = []
    for part in item["content"] if isinstance(item["content"], list) else []:
        if part["type"] == "input_image":
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        else:
            parts.append({"type": "text", "text": part.get("text") or ""})
    return {"role": item["role"], "content": parts}


def _tool_result(item: dict[str, Any]) -> dict[str, Any]:
    output = item["output"]
    if isinstance(output, str):
        return {"role": "tool", "tool_call_id": item["call_id"], "content": output}
    content = [
        {"type": "image_url", "image_url": {"url": part["image_url"]}}
        if part["type"] == "input_image"
        else {"type": "text", "text": part.get("text") or ""}
        for part in output
    ]
    return {"role": "tool", "tool_call_id": item["call_id"], "content": content}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text") or part.get("refusal") or "" for part in content)


def reasoning_text(item: dict[str, Any]) -> str:
    """A reasoning item's text: its ``reasoning_text`` content, else what its
    ``encrypted_content`` carries (when this gateway made it), else its summary."""
    texts = [part.get("text") or "" for part in item.get("content") or []]
    if any(texts):
        return "".join(texts)
    decrypted = decrypt_reasoning(item.get("encrypted_content"))
    if decrypted is not None:
        return decrypted
    return "".join(part.get("text") or "" for part in item.get("summary") or [])


def encrypt_reasoning(text: str) -> str:
    """``encrypted_content`` for a reasoning item: the text, for this gateway to read back."""
    payload = base64.urlsafe_b64encode(json.dumps({"text": text}).encode()).decode()
    return _ENCRYPTED_PREFIX + payload


def decrypt_reasoning(content: Any) -> str | None:
    """The reasoning text in ``encrypted_content`` made by ``encrypt_reasoning``; None for
    anything else (OpenAI's own encrypted reasoning cannot be read, and is then dropped)."""
    if not isinstance(content, str) or not content.startswith(_ENCRYPTED_PREFIX):
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(content[len(_ENCRYPTED_PREFIX) :]))
    except (ValueError, binascii.Error):
        return None
    text = decoded.get("text") if isinstance(decoded, dict) else None
    return text if isinstance(text, str) else None


def chat_body(
    body: dict[str, Any], conversation: list[dict[str, Any]]
) -> tuple[dict[str, Any], ToolNames]:
    """The chat request a responses request amounts to (instructions as the system message,
    then the conversation's items as messages, the settings in chat's names), and the names
    its functions go by."""
    tools, names = tools_to_chat(body.get("tools"))
    messages = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    messages += items_to_messages(conversation, names)
    chat: dict[str, Any] = {
        "model": body["model"],
        "messages": messages,
        "stream": bool(body.get("stream")),
    }
    if tools:
        chat["tools"] = tools
        chat["tool_choice"] = tool_choice_to_chat(body.get("tool_choice"), names)
    for name in ("temperature", "top_p", "options", "keep_alive", "think"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    if body.get("truncation") is not None:
        # "auto" lets Ollama drop the oldest items of a conversation that does not fit.
        chat["truncate"] = body["truncation"] == "auto"
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        chat["reasoning_effort"] = effort
    text_format = (body.get("text") or {}).get("format") or {}
    if text_format.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif text_format.get("type") == "json_schema":
        schema = {"name": text_format.get("name"), "schema": text_format.get("schema", {})}
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    if wants_logprobs(body):
        chat["logprobs"] = True
        chat["top_logprobs"] = body.get("top_logprobs") or 0
    return chat, names


def wants_logprobs(body: dict[str, Any]) -> bool:
    """Whether the output text carries log probabilities (``include`` asks for them)."""
    return "message.output_text.logprobs" in (body.get("include") or [])
