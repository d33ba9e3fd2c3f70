"""Pure translation between the OpenAI API and Ollama's native API.

Requests go OpenAI -> Ollama (``chat_request_to_ollama``, ``completion_request_to_ollama``);
answers come back Ollama -> OpenAI (``ollama_chat_to_openai``, ``ollama_chunk_to_openai``...).
Bodies arrive here already validated by ``schemas``. No HTTP, no Flask, no requests: dicts in,
dicts out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

SYSTEM_FINGERPRINT = "fp_ollama"
OWNED_BY = "ollama"

# OpenAI field -> Ollama option, for the fields whose value passes through unchanged.
_DIRECT_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}
# OpenAI's "minimal" has no Ollama level; the nearest is "low".
_THINK_BY_EFFORT = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
}


@dataclass(frozen=True)
class SamplingDefaults:
    """Values applied when a request leaves a field unset; None leaves Ollama's own default."""

    temperature: float | None = None
    max_tokens: int | None = None


def new_id(prefix: str) -> str:
    """A unique answer id in OpenAI's style (``chatcmpl-...``, ``cmpl-...``)."""
    return f"{prefix}-{secrets.token_urlsafe(18)}"


def chat_request_to_ollama(body: dict[str, Any], defaults: SamplingDefaults) -> dict[str, Any]:
    """The /api/chat payload for a validated OpenAI chat completion request."""
    payload: dict[str, Any] = {
        "model": body["model"],
        "messages": [_message_to_ollama(message) for message in body["messages"]],
        "stream": bool(body.get("stream")),
        "options": _options(body, defaults),
    }
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_object":
        payload["format"] = "json"
    elif response_format.get("type") == "json_schema":
        payload["format"] = response_format["json_schema"].get("schema", {})
    think = body.get("think")
    if think is None and body.get("reasoning_effort") is not None:
        think = _THINK_BY_EFFORT[body["reasoning_effort"]]
    if think is not None:
        payload["think"] = think
    if body.get("keep_alive") is not None:
        payload["keep_alive"] = body["keep_alive"]
    return payload


def completion_request_to_ollama(
    body: dict[str, Any], defaults: SamplingDefaults
) -> dict[str, Any]:
    """The /api/generate payload for a validated OpenAI (legacy) completion request."""
    payload: dict[str, Any] = {
        "model": body["model"],
        "prompt": completion_prompt(body),
        "stream": bool(body.get("stream")),
        "options": _options(body, defaults),
    }
    for name in ("suffix", "keep_alive", "think"):
        if body.get(name) is not None:
            payload[name] = body[name]
    return payload


def completion_prompt(body: dict[str, Any]) -> str:
    """The prompt text; schemas allows a string or a list holding one string."""
    prompt = body["prompt"]
    return prompt[0] if isinstance(prompt, list) else prompt


def _message_to_ollama(message: dict[str, Any]) -> dict[str, Any]:
    # "developer" is OpenAI's newer name for "system"; Ollama only knows the latter.
    role = "system" if message["role"] == "developer" else message["role"]
    content = message.get("content")
    if content is None or isinstance(content, str):
        return {"role": role, "content": content or ""}
    texts, images = [], []
    for part in content:
        if part["type"] == "text":
            texts.append(part["text"])
        else:
            # Ollama wants the bare base64 data, without the "data:image/png;base64," header.
            images.append(part["image_url"]["url"].partition(",")[2])
    result: dict[str, Any] = {"role": role, "content": "\n".join(texts)}
    if images:
        result["images"] = images
    return result


def _options(body: dict[str, Any], defaults: SamplingDefaults) -> dict[str, Any]:
    # Raw Ollama options (extra_body) first, so that the OpenAI fields a client set win.
    options = dict(body.get("options") or {})
    for field, option in _DIRECT_OPTIONS.items():
        if body.get(field) is not None:
            options[option] = body[field]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    stop = body.get("stop")
    if stop is not None:
        options["stop"] = [stop] if isinstance(stop, str) else list(stop)
    if defaults.temperature is not None:
        options.setdefault("temperature", defaults.temperature)
    if defaults.max_tokens is not None:
        options.setdefault("num_predict", defaults.max_tokens)
    return options


def finish_reason(done_reason: str | None) -> str:
    """OpenAI's finish_reason for Ollama's done_reason (``length`` when num_predict was hit)."""
    return "length" if done_reason == "length" else "stop"


def usage(answer: dict[str, Any]) -> dict[str, int]:
    """Token counts from Ollama's counters; prompt_eval_count is absent for a cached prompt."""
    prompt_tokens = answer.get("prompt_eval_count") or 0
    completion_tokens = answer.get("eval_count") or 0
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def ollama_chat_to_openai(
    answer: dict[str, Any], *, completion_id: str, created: int, model: str
) -> dict[str, Any]:
    """A ``chat.completion`` from a non-streamed /api/chat answer."""
    ollama_message = answer.get("message") or {}
    message: dict[str, Any] = {
        "role": "assistant",
        "content": ollama_message.get("content", ""),
        "refusal": None,
    }
    if ollama_message.get("thinking"):
        message["reasoning_content"] = ollama_message["thinking"]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(answer.get("done_reason")),
            }
        ],
        "usage": usage(answer),
    }


def ollama_generate_to_openai(
    answer: dict[str, Any], *, completion_id: str, created: int, model: str, echo: str = ""
) -> dict[str, Any]:
    """A ``text_completion`` from a non-streamed /api/generate answer; ``echo`` is prepended."""
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "text": echo + answer.get("response", ""),
                "logprobs": None,
                "finish_reason": finish_reason(answer.get("done_reason")),
            }
        ],
        "usage": usage(answer),
    }


@dataclass(frozen=True)
class StreamIdentity:
    """What every chunk of one stream repeats: one id, one created time, the model asked for."""

    completion_id: str
    created: int
    model: str
    # With stream_options.include_usage, every chunk carries "usage": null and one extra
    # chunk at the end carries the counts.
    include_usage: bool = False

    def chunk(self, obj: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        """A chunk of this stream with the given choices."""
        chunk = {
            "id": self.completion_id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def usage_chunk(self, obj: str, done_line: dict[str, Any]) -> list[dict[str, Any]]:
        """The extra last chunk include_usage asks for, or nothing."""
        if not self.include_usage:
            return []
        return [{**self.chunk(obj, []), "usage": usage(done_line)}]


class ChatStream:
    """Turns /api/chat lines into ``chat.completion.chunk`` objects for one stream."""

    OBJECT = "chat.completion.chunk"

    def __init__(self, identity: StreamIdentity) -> None:
        self.identity = identity

    def start(self) -> list[dict[str, Any]]:
        """The opening chunk: OpenAI streams announce the role before any content."""
        return [self._delta({"role": "assistant", "content": ""})]

    def piece(self, line: dict[str, Any]) -> dict[str, Any] | None:
        """The chunk for one streamed line, or None when the line carries no text."""
        message = line.get("message") or {}
        delta: dict[str, Any] = {}
        if message.get("thinking"):
            delta["reasoning_content"] = message["thinking"]
        if message.get("content"):
            delta["content"] = message["content"]
        return self._delta(delta) if delta else None

    def finish(self, done_line: dict[str, Any]) -> list[dict[str, Any]]:
        """The closing chunks: an empty delta with finish_reason, then usage if asked."""
        reason = finish_reason(done_line.get("done_reason"))
        return [self._delta({}, reason), *self.identity.usage_chunk(self.OBJECT, done_line)]

    def _delta(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self.identity.chunk(self.OBJECT, [choice])


class CompletionStream:
    """Turns /api/generate lines into streamed ``text_completion`` objects for one stream."""

    OBJECT = "text_completion"

    def __init__(self, identity: StreamIdentity, echo: str = "") -> None:
        self.identity = identity
        self.echo = echo

    def start(self) -> list[dict[str, Any]]:
        """With ``echo``, the prompt comes first, as its own piece."""
        return [self._text(self.echo)] if self.echo else []

    def piece(self, line: dict[str, Any]) -> dict[str, Any] | None:
        """The chunk for one streamed line, or None when the line carries no text."""
        text = line.get("response")
        return self._text(text) if text else None

    def finish(self, done_line: dict[str, Any]) -> list[dict[str, Any]]:
        """The closing chunks: empty text with finish_reason, then usage if asked."""
        reason = finish_reason(done_line.get("done_reason"))
        return [self._text("", reason), *self.identity.usage_chunk(self.OBJECT, done_line)]

    def _text(self, text: str, finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        return self.identity.chunk(self.OBJECT, [choice])


def ollama_models_to_openai(tags: dict[str, Any]) -> dict[str, Any]:
    """The ``/v1/models`` list from an /api/tags answer (an empty list, never null)."""
    return {"object": "list", "data": [model_entry(entry) for entry in tags.get("models") or []]}


def model_entry(entry: dict[str, Any], model_id: str | None = None) -> dict[str, Any]:
    """One OpenAI model object for an /api/tags entry."""
    return {
        "id": model_id or entry.get("name") or entry.get("model", ""),
        "object": "model",
        "created": epoch_seconds(entry.get("modified_at")),
        "owned_by": OWNED_BY,
    }


def find_model(tags: dict[str, Any], requested: str) -> dict[str, Any] | None:
    """The /api/tags entry for a model name; a name without a tag means ``:latest``."""
    wanted = canonical_model_name(requested)
    for entry in tags.get("models") or []:
        if canonical_model_name(entry.get("name") or entry.get("model", "")) == wanted:
            return entry
    return None


def canonical_model_name(name: str) -> str:
    """``llama3.2`` and ``llama3.2:latest`` name one model; hosts may carry a port's colon."""
    last_segment = name.rsplit("/", 1)[-1]
    return name if ":" in last_segment else f"{name}:latest"


def epoch_seconds(timestamp: str | None) -> int:
    """Unix seconds for Ollama's RFC 3339 times, which carry nanoseconds Python cannot parse."""
    if not timestamp:
        return 0
    text = timestamp.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    try:
        return int(datetime.fromisoformat(text).timestamp())
    except ValueError:
        return 0
