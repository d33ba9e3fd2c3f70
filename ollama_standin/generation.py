"""What the model produces: the answer planned from a request and the knobs, and its lines.

This module owns the model's behaviour: tokenizing, the reply text (from the knobs or derived
from the input), thinking, tool calls, `stop` and `num_predict`, the context window (a prompt
fitted to `num_ctx`, or refused under `truncate: false`; a generation stopped when the window
fills under `shift: false`), logprobs, the done line's counters, the fault that ends an answer
early, and embeddings; and the JSON objects of its answers. It knows no HTTP.
"""

from __future__ import annotations

import hashlib
import random
import re
import string
import time
import zlib
from dataclasses import dataclass
from typing import Any

from ollama_standin.wire import CONTEXT_OVERFLOW, Refusal, go_json, go_timestamp

# Model pieces: a word with its leading space, or one punctuation mark.
_TOKEN = re.compile(r"\s*\w+|\s*[^\w\s]|\s+")
# The stand-in's fixed rule for what a prompt costs: one token per word of its texts, and this
# many for the template around them. An embedding input costs its words and EMBED_TOKENS.
TEMPLATE_TOKENS = 10
EMBED_TOKENS = 2


def tokenize(text: str) -> list[str]:
    """Split text the way a model streams it; joining the pieces gives the text back."""
    return _TOKEN.findall(text)


@dataclass
class Generation:
    """What the model will produce for one request, decided before the first byte."""

    model: str
    chat: bool  # /api/chat's lines, else /api/generate's
    pieces: list[tuple[str, str]]  # ("thinking" | "content", text)
    tool_calls: list[dict[str, Any]]
    done_reason: str
    prompt_eval_count: int
    context: list[int]
    # Prompt tokens served from the KV cache (newer servers); None: not reported, as older ones.
    prompt_eval_cached_count: int | None = None
    started_ns: int = 0
    loaded_ns: int = 0
    # With "logprobs": true, how many alternatives each token lists ("top_logprobs").
    top_logprobs: int | None = None

    @property
    def eval_count(self) -> int:
        return len(self.pieces) + len(self.tool_calls)

    def line(self, kind: str, piece: str, *, done: bool) -> dict[str, Any]:
        """One line of the answer, shaped as its endpoint's."""
        return (chat_line if self.chat else generate_line)(self, kind, piece, done=done)

    def metrics(self) -> dict[str, int]:
        """Ollama's counters; zero values are left out, as Go's omitempty does."""
        now = time.monotonic_ns()
        prompt_eval_duration = self.prompt_eval_count * 250_000
        eval_duration = self.eval_count * 10_000_000 + max(now - self.loaded_ns, 0)
        load_duration = max(self.loaded_ns - self.started_ns, 0) + 1_334_875
        values = {
            "total_duration": load_duration + prompt_eval_duration + eval_duration,
            "load_duration": load_duration,
            "prompt_eval_count": self.prompt_eval_count,
            "prompt_eval_cached_count": self.prompt_eval_cached_count or 0,
            "prompt_eval_duration": prompt_eval_duration,
            "eval_count": self.eval_count,
            "eval_duration": eval_duration if self.eval_count else 0,
        }
        return {key: value for key, value in values.items() if value}


def plan(
    payload: dict[str, Any],
    knobs: dict[str, Any],
    options: dict[str, Any],
    chat: bool,
    thinks: bool,
    num_ctx: int,
) -> Generation:
    """Decide the whole answer: the prompt fitted to `num_ctx` (or refused), text from the knobs
    or the input, then stop, num_predict and, under `shift: false`, the room left in the window."""
    prompt_tokens = fitted_prompt_tokens(payload, chat, num_ctx)
    answering_tool = False
    if chat:
        messages = payload.get("messages") or []
        users = [m.get("content") or "" for m in messages if m.get("role") == "user"]
        said = users[-1] if users else ""
        reply = f"Hello! You said: {said}" if said else "Hello!"
        # After tool results, a model answers from them instead of calling tools again.
        results: list[str] = []
        for message in reversed(messages):
            if message.get("role") != "tool":
                break
            results.insert(0, f"{message.get('tool_name')} says {message.get('content')}")
        if results:
            answering_tool = True
            reply = "From the tools: " + "; ".join(results)
    else:
        said = payload.get("prompt") or ""
        reply = f"Completion of: {said}"
    tool_calls = []
    if chat and payload.get("tools") and knobs["tool_calls"] and not answering_tool:
        tool_calls = [_tool_call(index, call) for index, call in enumerate(knobs["tool_calls"])]
        if knobs["tool_calls_without_ids"]:
            tool_calls = [
                {"function": {k: v for k, v in c["function"].items() if k != "index"}}
                for c in tool_calls
            ]
        reply = ""
    elif payload.get("format"):
        # A model constrained by `format` answers JSON.
        reply = go_json({"reply": reply})
    if knobs["reply"] is not None:
        reply = knobs["reply"]

    done_reason = "stop"
    stops = [s for s in options.get("stop") or [] if s]
    cuts = [reply.find(s) for s in stops if s in reply]
    if cuts:
        reply = reply[: min(cuts)]
        tool_calls = []
    pieces = []
    if thinks:
        thinking = knobs["thinking"] if knobs["thinking"] is not None else f"Thinking about: {said}"
        pieces += [("thinking", piece) for piece in tokenize(thinking)]
    pieces += [("content", piece) for piece in tokenize(reply)]
    limit = options.get("num_predict", -1)
    if limit > 0 and len(pieces) + len(tool_calls) > limit:
        pieces, tool_calls, done_reason = pieces[:limit], [], "length"
    # With `shift: false` the model stops when the window is full instead of forgetting its start.
    room = max(num_ctx - prompt_tokens, 0)
    if payload.get("shift") is False and len(pieces) + len(tool_calls) > room:
        pieces, tool_calls, done_reason = pieces[:room], [], "length"
    cached = knobs["cached_prompt_tokens"]
    return Generation(
        model=payload["model"],
        chat=chat,
        pieces=pieces,
        tool_calls=tool_calls,
        done_reason=done_reason,
        prompt_eval_count=prompt_tokens,
        context=[] if chat else _token_ids(tokenize(said) + [text for _, text in pieces]),
        prompt_eval_cached_count=None if cached is None else min(cached, prompt_tokens),
    )


def _words(text: Any) -> int:
    return len(text.split()) if isinstance(text, str) else 0


def _kept_cost(messages: list[dict[str, Any]], costs: list[int], start: int) -> int:
    """What a chat prompt costs keeping its messages from `start` on and the system ones before."""
    before = zip(messages[:start], costs, strict=False)
    system = sum(cost for message, cost in before if message.get("role") == "system")
    return system + sum(costs[start:]) + TEMPLATE_TOKENS


def fitted_prompt_tokens(payload: dict[str, Any], chat: bool, num_ctx: int) -> int:
    """The prompt's tokens once fitted to `num_ctx`, as Ollama fits it.

    By default (`truncate` absent or true) a chat drops its oldest messages, keeping the system
    messages and the last message, and a prompt still too long is cut to `num_ctx`, all without
    a word. With `truncate: false` a prompt that does not fit is refused with Ollama's 400.
    """
    if chat:
        messages = payload.get("messages") or []
        costs = [_words(message.get("content")) for message in messages]
    else:
        messages = []
        costs = [_words(payload.get(name)) for name in ("system", "prompt", "suffix")]
    total = sum(costs) + TEMPLATE_TOKENS
    if total <= num_ctx:
        return total
    if payload.get("truncate") is False:
        raise Refusal(400, CONTEXT_OVERFLOW)
    # The latest messages that fit, the last one always, with the system messages before them.
    start = len(messages) - 1
    while start > 0 and _kept_cost(messages, costs, start - 1) <= num_ctx:
        start -= 1
    if messages:
        total = _kept_cost(messages, costs, start)
    return min(total, num_ctx)


def _tool_call(index: int, call: dict[str, Any]) -> dict[str, Any]:
    """A tool call as recent Ollama servers send it: a random id and an index."""
    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=8))
    return {
        "id": f"call_{suffix}",
        "function": {"index": index, "name": call["name"], "arguments": call.get("arguments", {})},
    }


def fault(knobs: dict[str, Any], produced: int) -> tuple[str | None, int]:
    """The earliest fault knob set, and after how many pieces it strikes (at most all of them)."""
    faults = [
        (knobs[f"{kind}_after_tokens"], kind)
        for kind in ("error", "drop", "garbage")
        if knobs[f"{kind}_after_tokens"] is not None
    ]
    if not faults:
        return None, produced
    at, earliest = min(faults)
    return earliest, min(max(at, 0), produced)


def answer_text(pieces: list[tuple[str, str]]) -> str:
    """The answer text of some pieces, thinking left out."""
    return "".join(piece for kind, piece in pieces if kind == "content")


def logprob(token: str, alternatives: int) -> dict[str, Any]:
    """Ollama's per-token log probability: stable made-up values, the token itself ranked first."""
    own = -(zlib.crc32(token.encode()) % 1000) / 1000

    def entry(text: str, value: float) -> dict[str, Any]:
        return {"token": text, "logprob": value, "bytes": list(text.encode())}

    top = [entry(token, own)]
    top += [entry(f"{token}~{rank}", own - rank) for rank in range(1, alternatives)]
    # Go's omitempty: no "top_logprobs" key when none were asked for.
    return {**entry(token, own), **({"top_logprobs": top} if alternatives else {})}


def _with_logprobs(line: dict[str, Any], generation: Generation, piece: str) -> dict[str, Any]:
    if generation.top_logprobs is not None and piece:
        line["logprobs"] = [logprob(piece, generation.top_logprobs)]
    return line


def chat_line(generation: Generation, kind: str, piece: str, *, done: bool) -> dict[str, Any]:
    """One `/api/chat` line: a piece of `message`, or the done line with the counters."""
    message = {"role": "assistant", "content": piece if kind == "content" else ""}
    if kind == "thinking":
        message["thinking"] = piece
    line: dict[str, Any] = {
        "model": generation.model,
        "created_at": go_timestamp(),
        "message": message,
        "done": done,
    }
    _with_logprobs(line, generation, piece)
    if done:
        line["done_reason"] = generation.done_reason
        line.update(generation.metrics())
    return line


def generate_line(generation: Generation, kind: str, piece: str, *, done: bool) -> dict[str, Any]:
    """One `/api/generate` line: a piece of `response`; the done line adds `context`."""
    line: dict[str, Any] = {
        "model": generation.model,
        "created_at": go_timestamp(),
        "response": piece if kind == "content" else "",
    }
    if kind == "thinking":
        line["thinking"] = piece
    line["done"] = done
    _with_logprobs(line, generation, piece)
    if done:
        line["done_reason"] = generation.done_reason
        line["context"] = generation.context
        line.update(generation.metrics())
    return line


def whole_answer(generation: Generation, produced: list[tuple[str, str]]) -> dict[str, Any]:
    """A non-streamed answer: the done line carrying the whole message, thinking and logprobs."""
    final = generation.line("", "", done=True)
    thinking = "".join(text for kind, text in produced if kind == "thinking")
    content = answer_text(produced)
    if generation.top_logprobs is not None:
        final["logprobs"] = [logprob(text, generation.top_logprobs) for _, text in produced]
    if generation.chat:
        final["message"]["content"] = content
        if thinking:
            final["message"]["thinking"] = thinking
        if generation.tool_calls:
            final["message"]["tool_calls"] = generation.tool_calls
    else:
        final["response"] = content
        if thinking:
            final["thinking"] = thinking
    return final


def load_answer(name: str, chat: bool, reason: str) -> dict[str, Any]:
    """What an empty chat or generate answers: the model was (un)loaded, nothing generated."""
    answer: dict[str, Any] = {"model": name, "created_at": go_timestamp()}
    if chat:
        answer["message"] = {"role": "assistant", "content": ""}
    else:
        answer["response"] = ""
    answer.update({"done": True, "done_reason": reason})
    return answer


def _token_ids(pieces: list[str]) -> list[int]:
    """Stable fake token ids, like the `context` Ollama returns from /api/generate."""
    return [zlib.crc32(piece.encode()) % 128_256 for piece in pieces]


def embed_answer(
    payload: dict[str, Any], inputs: list[str], length: int, num_ctx: int, started_ns: int
) -> dict[str, Any]:
    """`/api/embed`: a vector of `length` numbers per input, and Ollama's counters.

    An input longer than `num_ctx` is cut to it, or refused with Ollama's 400 under
    `truncate: false`.
    """
    costs = [_words(text) + EMBED_TOKENS for text in inputs]
    if payload.get("truncate") is False and max(costs) > num_ctx:
        raise Refusal(400, CONTEXT_OVERFLOW)
    loaded_ns = time.monotonic_ns()
    return {
        "model": payload["model"],
        "embeddings": [_embedding(text, length) for text in inputs],
        "total_duration": loaded_ns - started_ns + 14_143_917,
        "load_duration": loaded_ns - started_ns + 1_019_500,
        "prompt_eval_count": sum(min(cost, num_ctx) for cost in costs),
    }


def _embedding(text: str, length: int) -> list[float]:
    """A unit vector that depends only on the text.

    A shorter vector is the longer one's prefix normalised again, as Ollama truncates
    `dimensions`.
    """
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    generator = random.Random(seed)
    vector = [generator.gauss(0.0, 1.0) for _ in range(length)]
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [float(f"{v / norm:.7g}") for v in vector]
