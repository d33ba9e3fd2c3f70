"""Exchange: what one API call did, for the access log and metrics.

The view creates it (``start_exchange``) and fills in what it learns; a streamed answer keeps
filling it in after the view has returned (first token time, usage), so readers must wait for
the response to close (``Response.call_on_close``) before they look.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from flask import g

from .errors import ApiError


@dataclass
class Exchange:
    """One request's model, mode, timings and token counts (None while unknown)."""

    endpoint: str
    model: str | None = None
    stream: bool = False
    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # The error code of an upstream failure, if any ("upstream_timeout", "ollama_unavailable").
    upstream_error: str | None = None
    # The Ollama server (its URL) the last upstream call was sent to.
    server: str | None = None
    # Seconds its upstream calls waited for a slot (the longest, with n > 1); None: no call
    # went through the queue.
    queued: float | None = None
    # Ollama lines relayed to the client in a stream, one token each: what a stream that ends
    # before Ollama's count (the client left, Ollama failed) is charged.
    streamed_tokens: int = 0

    @property
    def time_to_first_token(self) -> float | None:
        """Seconds from the request's arrival to the first generated text."""
        return None if self.first_token_at is None else self.first_token_at - self.started

    def note_server(self, url: str) -> None:
        """Called by OllamaServers with each server it sends this request's calls to."""
        self.server = url

    def note_queued(self, seconds: float) -> None:
        """Called by OllamaServers with the wait of each call for its slot."""
        self.queued = max(self.queued or 0.0, seconds)

    def note_error(self, error: ApiError) -> None:
        """Called with each error the client is told of; upstream failures are counted."""
        if error.is_upstream:
            self.upstream_error = error.code

    def record_usage(self, usage: dict[str, int]) -> None:
        self.prompt_tokens = usage["prompt_tokens"]
        # Embeddings generate nothing: their usage has no completion_tokens.
        self.completion_tokens = usage.get("completion_tokens", 0)

    def note_streamed(self, line: dict) -> None:
        """Called with each Ollama line a stream relays; the last (``done``) carries counts."""
        if not line.get("done"):
            self.streamed_tokens += 1

    def charged_usage(self) -> tuple[int, int]:
        """The prompt and completion tokens to charge: Ollama's counts, or for a stream that
        ended without them the lines streamed, as completion tokens; Ollama counts the prompt
        only in its last line, so such a stream's prompt is not known."""
        if self.completion_tokens is not None:
            return self.prompt_tokens or 0, self.completion_tokens
        return 0, self.streamed_tokens


def start_exchange(endpoint: str) -> Exchange:
    """Create this request's Exchange and make it reachable as ``current_exchange()``."""
    g.exchange = Exchange(endpoint=endpoint)
    return g.exchange


def current_exchange() -> Exchange | None:
    """The Exchange of the request being handled, if its view started one."""
    return g.get("exchange")


def request_started() -> float:
    """When the request being handled arrived (``time.monotonic``); the first call decides."""
    return g.setdefault("request_started", time.monotonic())
