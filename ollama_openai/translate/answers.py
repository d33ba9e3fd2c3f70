"""What every generated answer shares, streamed or not: finish reasons, usage, log
probabilities, and the plan of a generation.

Each endpoint describes one choice by a ``Choice``: the same object turns Ollama's lines into
streamed choice parts, or one whole non-streamed answer into the finished choice, so the two
paths apply the same rules (tool-call ids and cap, finish reason, reasoning, logprob offsets).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .envelope import AnswerIdentity

USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")
# A server-sent event: its name (None: a plain ``data:`` event, as chat streams send) and its
# data, a JSON object or a bare text such as ``[DONE]``.
Event = tuple[str | None, dict[str, Any] | str]
# What ends a chat or completion stream; the SDKs stop reading there.
DONE: Event = (None, "[DONE]")


def finish_reason(done_reason: str | None) -> str:
    """OpenAI's finish_reason for Ollama's done_reason (``length`` when num_predict was hit)."""
    return "length" if done_reason == "length" else "stop"


def usage(answer: dict[str, Any]) -> dict[str, Any]:
    """Token counts from Ollama's counters; prompt_eval_count is absent for a cached prompt.

    ``prompt_tokens_details.cached_tokens`` comes from ``prompt_eval_cached_count``, which only
    newer servers send; without it the details are left out rather than guessed.
    """
    prompt_tokens = answer.get("prompt_eval_count") or 0
    completion_tokens = answer.get("eval_count") or 0
    counts: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    cached = cached_tokens(answer)
    if cached is not None:
        counts["prompt_tokens_details"] = {"cached_tokens": cached}
    return counts


def cached_tokens(answer: dict[str, Any]) -> int | None:
    """Ollama's ``prompt_eval_cached_count`` (prompt tokens served from its KV cache), if sent."""
    cached = answer.get("prompt_eval_cached_count")
    return cached if isinstance(cached, int) and not isinstance(cached, bool) else None


def total_usage(answers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The usage of several generations (n > 1, several prompts), summed."""
    counts = [usage(answer) for answer in answers]
    totals: dict[str, Any] = {key: sum(count[key] for count in counts) for key in USAGE_KEYS}
    cached = [
        count["prompt_tokens_details"] for count in counts if "prompt_tokens_details" in count
    ]
    if cached:
        totals["prompt_tokens_details"] = {"cached_tokens": sum(c["cached_tokens"] for c in cached)}
    return totals


def include_usage(body: dict[str, Any]) -> bool:
    """Whether a stream ends with a usage chunk (``stream_options.include_usage``)."""
    return bool((body.get("stream_options") or {}).get("include_usage"))


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


class Choice(Protocol):
    """One choice of an answer, fed the Ollama lines of its own generation in order."""

    def opening(self) -> dict[str, Any] | None:
        """The streamed choice part sent before any line, or None."""

    def step(self, line: dict[str, Any]) -> dict[str, Any] | None:
        """The streamed choice part for one line, or None when it carries nothing to send."""

    def closing(self, done_line: dict[str, Any]) -> dict[str, Any]:
        """The streamed choice part that ends the choice, with its finish_reason."""

    def whole(self, answer: dict[str, Any]) -> dict[str, Any]:
        """The finished choice of a non-streamed answer (Ollama's one whole line)."""


class Generation(Protocol):
    """What the views need of any plan: the Ollama calls, and the model the client named."""

    @property
    def path(self) -> str: ...

    @property
    def payloads(self) -> list[dict[str, Any]]: ...

    @property
    def model(self) -> str: ...

    @property
    def stream(self) -> bool: ...


@dataclass(frozen=True)
class GenerationPlan:
    """What one generating request becomes: its Ollama calls (one per choice) and how their
    answers come back, as a stream (``translator``) or as one answer (``answer``)."""

    path: str
    payloads: list[dict[str, Any]]
    identity: AnswerIdentity
    answer_object: str
    chunk_object: str
    # Builds the Choice for each choice index, fresh for each answer.
    new_choice: Callable[[int], Choice]
    include_usage: bool = False

    @property
    def stream(self) -> bool:
        return bool(self.payloads[0].get("stream"))

    @property
    def model(self) -> str:
        """The model the client asked for (an alias stays the alias)."""
        return self.identity.model

    def translator(self) -> ChoicesStream:
        """The stream translator for this answer's lines (see ``streaming.relay``)."""
        choices = [self.new_choice(index) for index in range(len(self.payloads))]
        return ChoicesStream(self.identity, self.chunk_object, choices, self.include_usage)

    def answer(self, answers: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The whole answer from the non-streamed Ollama answers, one per choice, in order."""
        choices = [self.new_choice(index).whole(answer) for index, answer in enumerate(answers)]
        return self.identity.envelope(self.answer_object, choices, usage=total_usage(answers))


@dataclass
class ChoicesStream:
    """Turns the lines of an answer's choices into chunks, one choice part per chunk.

    With ``include_usage``, every chunk carries ``"usage": null`` and one extra chunk at the
    end carries the counts of all choices.
    """

    identity: AnswerIdentity
    chunk_object: str
    choices: list[Choice]
    include_usage: bool = False

    def start(self) -> list[Event]:
        """The opening chunks, in choice order."""
        parts = (choice.opening() for choice in self.choices)
        return [self._chunk(part) for part in parts if part is not None]

    def piece(self, line: dict[str, Any], index: int = 0) -> list[Event]:
        """The chunk for one line of choice ``index``, if the line carries anything."""
        part = self.choices[index].step(line)
        return [] if part is None else [self._chunk(part)]

    def finish(self, done_line: dict[str, Any], index: int = 0) -> list[Event]:
        """The closing chunk of choice ``index``."""
        return [self._chunk(self.choices[index].closing(done_line))]

    def end(self, totals: dict[str, int]) -> list[Event]:
        """After every choice has finished: the usage chunk if include_usage asked, [DONE]."""
        if not self.include_usage:
            return [DONE]
        return [(None, self.identity.envelope(self.chunk_object, [], usage=totals)), DONE]

    def fail(self, error: dict[str, Any]) -> list[Event]:
        """A failure after the stream began: one event with the error envelope, which the
        SDKs raise as ``APIError``; no ``[DONE]`` pretends success."""
        return [(None, {"error": error})]

    def _chunk(self, part: dict[str, Any]) -> Event:
        if self.include_usage:
            return (None, self.identity.envelope(self.chunk_object, [part], usage=None))
        return (None, self.identity.envelope(self.chunk_object, [part]))
