"""Pure translation between the OpenAI API and Ollama's native API.

Requests go OpenAI -> Ollama (``chat_request_to_ollama``, ``completion_request_to_ollama``);
answers come back Ollama -> OpenAI (``ollama_chat_to_openai``, ``ollama_chunk_to_openai``...).
Bodies arrive here already validated by ``schemas``. No HTTP, no Flask, no requests: dicts in,
dicts out.
"""

from __future__ import annotations

import base64
import json
import secrets
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

SYSTEM_FINGERPRINT = "fp_ollama"
OWNED_BY = "ollama"
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")

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


def resolve_model(requested: str, aliases: Mapping[str, str]) -> str:
    """The Ollama model a client's model name stands for (MODEL_ALIASES), else the name itself."""
    return aliases.get(requested, requested)


def chat_request_to_ollama(
    body: dict[str, Any], defaults: SamplingDefaults, model: str | None = None
) -> dict[str, Any]:
    """The /api/chat payload for a validated OpenAI chat completion request.

    ``model`` is the Ollama model when the client named an alias; it defaults to the body's.
    """
    payload: dict[str, Any] = {
        "model": model or body["model"],
        "messages": _messages_to_ollama(body["messages"]),
        "stream": bool(body.get("stream")),
        "options": _options(body, defaults),
    }
    tools = _tools_to_ollama(body.get("tools"), body.get("tool_choice"))
    if tools:
        payload["tools"] = tools
    if body.get("logprobs"):
        payload["logprobs"] = True
        payload["top_logprobs"] = body.get("top_logprobs") or 0
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


def choice_count(body: dict[str, Any]) -> int:
    """How many answers a request asks for per prompt (``n``, 1 when unset)."""
    return body.get("n") or 1


def per_choice(payload: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """``count`` payloads for ``count`` choices of one prompt.

    A fixed ``seed`` is offset by the choice index: the n choices then differ, as OpenAI's do,
    and the whole answer stays reproducible.
    """
    seed = payload["options"].get("seed")
    if seed is None or count == 1:
        return [payload] * count
    return [{**payload, "options": {**payload["options"], "seed": seed + i}} for i in range(count)]


def completion_requests_to_ollama(
    body: dict[str, Any], defaults: SamplingDefaults, model: str | None = None
) -> list[dict[str, Any]]:
    """The /api/generate payloads for a validated OpenAI (legacy) completion request.

    One per choice, in choice-index order: each prompt of the list ``n`` times, as OpenAI
    numbers them (prompt ``i``'s answers are choices ``i*n`` to ``i*n + n - 1``).
    """
    payloads = []
    for prompt in completion_prompts(body):
        payload: dict[str, Any] = {
            "model": model or body["model"],
            "prompt": prompt,
            "stream": bool(body.get("stream")),
            "options": _options(body, defaults),
        }
        for name in ("suffix", "keep_alive", "think"):
            if body.get(name) is not None:
                payload[name] = body[name]
        if body.get("logprobs") is not None:
            # The legacy API's logprobs is the number of alternatives per token.
            payload["logprobs"] = True
            payload["top_logprobs"] = body["logprobs"]
        payloads += per_choice(payload, choice_count(body))
    return payloads


def completion_prompts(body: dict[str, Any]) -> list[str]:
    """The prompt texts; schemas allows a string or a list of strings."""
    prompt = body["prompt"]
    return list(prompt) if isinstance(prompt, list) else [prompt]


def completion_echoes(body: dict[str, Any]) -> list[str]:
    """What ``echo`` puts before each choice's text: its prompt, or nothing."""
    if not body.get("echo"):
        return [""] * (len(completion_prompts(body)) * choice_count(body))
    return [prompt for prompt in completion_prompts(body) for _ in range(choice_count(body))]


def _messages_to_ollama(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Ollama names the tool a result belongs to; OpenAI names the call, so remember the calls.
    tool_names: dict[str, str] = {}
    translated = []
    for message in messages:
        for call in message.get("tool_calls") or []:
            tool_names[call["id"]] = call["function"]["name"]
        translated.append(_message_to_ollama(message, tool_names))
    return translated


def _message_to_ollama(message: dict[str, Any], tool_names: dict[str, str]) -> dict[str, Any]:
    # "developer" is OpenAI's newer name for "system"; Ollama only knows the latter.
    role = "system" if message["role"] == "developer" else message["role"]
    content = message.get("content")
    texts, images = [], []
    if content is None or isinstance(content, str):
        texts.append(content or "")
    else:
        for part in content:
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                # Ollama wants the bare base64 data, without the "data:image/png;base64," header.
                images.append(part["image_url"]["url"].partition(",")[2])
    result: dict[str, Any] = {"role": role, "content": "\n".join(texts)}
    if images:
        result["images"] = images
    if message.get("reasoning_content"):
        result["thinking"] = message["reasoning_content"]
    if message.get("tool_calls"):
        result["tool_calls"] = [_tool_call_to_ollama(call) for call in message["tool_calls"]]
    if role == "tool":
        result["tool_name"] = tool_names[message["tool_call_id"]]
    return result


def _tool_call_to_ollama(call: dict[str, Any]) -> dict[str, Any]:
    # OpenAI carries arguments as a JSON string (checked by schemas), Ollama as an object.
    arguments = call["function"].get("arguments") or ""
    return {
        "id": call["id"],
        "function": {
            "name": call["function"]["name"],
            "arguments": json.loads(arguments) if arguments.strip() else {},
        },
    }


def _tools_to_ollama(
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


def total_usage(answers: Sequence[dict[str, Any]]) -> dict[str, int]:
    """The usage of several generations (n > 1, several prompts), summed."""
    counts = [usage(answer) for answer in answers]
    return {key: sum(count[key] for count in counts) for key in USAGE_KEYS}


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


def ollama_chat_to_openai(
    answers: Sequence[dict[str, Any]],
    *,
    completion_id: str,
    created: int,
    model: str,
    parallel_tool_calls: bool = True,
) -> dict[str, Any]:
    """A ``chat.completion`` from non-streamed /api/chat answers, one per choice.

    With ``parallel_tool_calls`` false, only an answer's first tool call is kept: Ollama
    cannot be told to make one call at most.
    """
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            _chat_choice(answer, index, parallel_tool_calls) for index, answer in enumerate(answers)
        ],
        "usage": total_usage(answers),
    }


def _chat_choice(answer: dict[str, Any], index: int, parallel_tool_calls: bool) -> dict[str, Any]:
    ollama_message = answer.get("message") or {}
    calls = tool_calls_to_openai(ollama_message.get("tool_calls"))
    if not parallel_tool_calls:
        calls = calls[:1]
    message: dict[str, Any] = {
        "role": "assistant",
        # OpenAI sends null content, not "", when the answer is only tool calls.
        "content": ollama_message.get("content") or (None if calls else ""),
        "refusal": None,
    }
    if ollama_message.get("thinking"):
        message["reasoning_content"] = ollama_message["thinking"]
    if calls:
        message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
    reason = "tool_calls" if calls else finish_reason(answer.get("done_reason"))
    logprobs = chat_logprobs(answer.get("logprobs"))
    return {"index": index, "message": message, "logprobs": logprobs, "finish_reason": reason}


def chat_logprobs(entries: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """A chat choice's ``logprobs`` from Ollama's per-token list; None when Ollama sent none."""
    if not entries:
        return None
    return {"content": [_token_logprob(entry) for entry in entries], "refusal": None}


def _token_logprob(entry: dict[str, Any], with_top: bool = True) -> dict[str, Any]:
    token = entry.get("token") or ""
    result: dict[str, Any] = {
        "token": token,
        "logprob": entry.get("logprob", 0.0),
        "bytes": entry.get("bytes") or list(token.encode()),
    }
    if with_top:
        alternatives = entry.get("top_logprobs") or []
        result["top_logprobs"] = [_token_logprob(alt, with_top=False) for alt in alternatives]
    return result


def completion_logprobs(
    entries: list[dict[str, Any]] | None, text_offset: int = 0
) -> dict[str, Any] | None:
    """A text completion's legacy ``logprobs`` (tokens, token_logprobs, top_logprobs,
    text_offset); ``text_offset`` is where the first token starts in the choice's text."""
    if not entries:
        return None
    offsets = []
    for entry in entries:
        offsets.append(text_offset)
        text_offset += len(entry.get("token") or "")
    return {
        "tokens": [entry.get("token") or "" for entry in entries],
        "token_logprobs": [entry.get("logprob", 0.0) for entry in entries],
        "top_logprobs": [
            {
                alt.get("token") or "": alt.get("logprob", 0.0)
                for alt in entry.get("top_logprobs") or []
            }
            for entry in entries
        ],
        "text_offset": offsets,
    }


def ollama_generate_to_openai(
    answers: Sequence[dict[str, Any]],
    *,
    completion_id: str,
    created: int,
    model: str,
    echoes: Sequence[str] = (),
) -> dict[str, Any]:
    """A ``text_completion`` from non-streamed /api/generate answers, one per choice.

    ``echoes[i]`` (the prompt, with ``echo``) is put before choice ``i``'s text.
    """
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            _text_choice(answer, index, echoes[index] if index < len(echoes) else "")
            for index, answer in enumerate(answers)
        ],
        "usage": total_usage(answers),
    }


def _text_choice(answer: dict[str, Any], index: int, echo: str) -> dict[str, Any]:
    return {
        "index": index,
        "text": echo + answer.get("response", ""),
        "logprobs": completion_logprobs(answer.get("logprobs"), len(echo)),
        "finish_reason": finish_reason(answer.get("done_reason")),
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

    def usage_chunk(self, obj: str, totals: dict[str, int]) -> list[dict[str, Any]]:
        """The extra last chunk include_usage asks for, or nothing."""
        if not self.include_usage:
            return []
        return [{**self.chunk(obj, []), "usage": totals}]


@dataclass
class _ChoicesStream:
    """What the chat and completion streams share: several choices, one usage chunk at the end.

    The relay calls ``start`` once, ``piece`` per line and ``finish`` per choice's done line
    (each with the choice ``index``), then ``end`` with the usage of all choices.
    """

    OBJECT = ""
    identity: StreamIdentity
    choices: int = 1

    def end(self, totals: dict[str, int]) -> list[dict[str, Any]]:
        """After every choice has finished: the usage chunk, if include_usage asked for it."""
        return self.identity.usage_chunk(self.OBJECT, totals)


@dataclass
class ChatStream(_ChoicesStream):
    """Turns /api/chat lines into ``chat.completion.chunk`` objects for one stream."""

    OBJECT = "chat.completion.chunk"
    parallel_tool_calls: bool = True

    def __post_init__(self) -> None:
        # Tool calls sent so far, per choice: their deltas' index counts up across the answer.
        self._tool_calls = [0] * self.choices

    def start(self) -> list[dict[str, Any]]:
        """The opening chunks: OpenAI streams announce the role before any content."""
        return [
            self._delta(index, {"role": "assistant", "content": ""})
            for index in range(self.choices)
        ]

    def piece(self, line: dict[str, Any], index: int = 0) -> dict[str, Any] | None:
        """The chunk for one streamed line, or None when the line carries nothing to send."""
        message = line.get("message") or {}
        delta: dict[str, Any] = {}
        if message.get("thinking"):
            delta["reasoning_content"] = message["thinking"]
        if message.get("content"):
            delta["content"] = message["content"]
        if message.get("tool_calls"):
            # Ollama sends each call whole, so one delta carries its id, name and arguments.
            sent = self._tool_calls[index]
            calls = tool_calls_to_openai(message["tool_calls"], first_index=sent)
            if not self.parallel_tool_calls:
                calls = calls[: max(0, 1 - sent)]
            self._tool_calls[index] += len(calls)
            if calls:
                delta["tool_calls"] = calls
        if not delta:
            return None
        return self._delta(index, delta, logprobs=chat_logprobs(line.get("logprobs")))

    def finish(self, done_line: dict[str, Any], index: int = 0) -> list[dict[str, Any]]:
        """The closing chunk of one choice: an empty delta with its finish_reason."""
        if self._tool_calls[index]:
            reason = "tool_calls"
        else:
            reason = finish_reason(done_line.get("done_reason"))
        return [self._delta(index, {}, reason)]

    def _delta(
        self,
        index: int,
        delta: dict[str, Any],
        finish: str | None = None,
        logprobs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return self.identity.chunk(self.OBJECT, [choice])


@dataclass
class CompletionStream(_ChoicesStream):
    """Turns /api/generate lines into streamed ``text_completion`` objects for one stream."""

    OBJECT = "text_completion"
    # With ``echo``, each choice's prompt, sent first as its own piece.
    echoes: Sequence[str] = ()

    def __post_init__(self) -> None:
        # Length of each choice's text so far: where its next token's text_offset starts.
        self._offsets = [len(echo) for echo in self.echoes] + [0] * self.choices

    def start(self) -> list[dict[str, Any]]:
        """With ``echo``, the prompts come first, one piece per choice."""
        return [self._text(index, echo) for index, echo in enumerate(self.echoes) if echo]

    def piece(self, line: dict[str, Any], index: int = 0) -> dict[str, Any] | None:
        """The chunk for one streamed line, or None when the line carries no text."""
        text = line.get("response")
        if not text:
            return None
        logprobs = completion_logprobs(line.get("logprobs"), self._offsets[index])
        self._offsets[index] += len(text)
        return self._text(index, text, logprobs=logprobs)

    def finish(self, done_line: dict[str, Any], index: int = 0) -> list[dict[str, Any]]:
        """The closing chunk of one choice: empty text with its finish_reason."""
        return [self._text(index, "", finish_reason(done_line.get("done_reason")))]

    def _text(
        self,
        index: int,
        text: str,
        finish: str | None = None,
        logprobs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        choice = {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}
        return self.identity.chunk(self.OBJECT, [choice])


def embedding_request_to_ollama(body: dict[str, Any], model: str | None = None) -> dict[str, Any]:
    """The /api/embed payload for a validated OpenAI embeddings request (input always a list)."""
    inputs = body["input"]
    payload: dict[str, Any] = {
        "model": model or body["model"],
        "input": [inputs] if isinstance(inputs, str) else list(inputs),
    }
    for name in ("dimensions", "keep_alive", "options", "truncate"):
        if body.get(name) is not None:
            payload[name] = body[name]
    return payload


def ollama_embed_to_openai(
    answer: dict[str, Any], *, model: str, encoding_format: str | None, dimensions: int | None
) -> dict[str, Any]:
    """The OpenAI embeddings list from an /api/embed answer, in input order.

    Servers that ignore ``dimensions`` send longer vectors; they are cut and normalised again,
    as Ollama itself does, so the request is honoured either way.
    """
    data = []
    for index, vector in enumerate(answer.get("embeddings") or []):
        if dimensions and len(vector) > dimensions:
            vector = _normalised(vector[:dimensions])
        data.append(
            {"object": "embedding", "index": index, "embedding": _encoded(vector, encoding_format)}
        )
    prompt_tokens = answer.get("prompt_eval_count") or 0
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def _normalised(vector: list[float]) -> list[float]:
    norm = sum(value * value for value in vector) ** 0.5
    return [value / norm for value in vector] if norm else vector


def _encoded(vector: list[float], encoding_format: str | None) -> list[float] | str:
    # "base64" is what the Python SDK asks for by default: little-endian float32, base64'd.
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def ollama_models_to_openai(
    tags: dict[str, Any], aliases: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The ``/v1/models`` list from an /api/tags answer (an empty list, never null).

    Each alias whose Ollama model is installed is listed too, under the alias.
    """
    data = [model_entry(entry) for entry in tags.get("models") or []]
    for alias, target in (aliases or {}).items():
        entry = find_model(tags, target)
        if entry is not None:
            data.append(model_entry(entry, model_id=alias))
    return {"object": "list", "data": data}


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
