"""Affinity: the next turn of a conversation goes back to the server that answered the last one,
whose KV cache still holds the conversation's start, so Ollama need not read it again.

A conversation is known by, in this order: the Responses API's ``previous_response_id`` (the
stored response names its server, for every worker and instance), else ``prompt_cache_key``,
else ``user`` (or ``safety_identifier``), else a hash of its opening (the system prompt and the
first user message; a completion's prompt start). Each worker remembers the server of the
last ``MAX_CONVERSATIONS`` keys for ``CONVERSATION_TTL`` seconds: past that, Ollama has most
likely unloaded the model (its default keep_alive is 5 minutes) and the cache is gone anyway.
"""

from __future__ import annotations

import collections
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

# Conversations each worker remembers, and for how long (seconds since their last turn).
MAX_CONVERSATIONS = 10_000
CONVERSATION_TTL = 600.0
# Characters of a completion's prompt that make its opening: prompts that share them share a
# cacheable prefix.
PROMPT_OPENING = 1024


@dataclass(frozen=True)
class Affinity:
    """Where a call would rather go: ``server``, known from a stored response, and its
    ``conversation``, whose ``key`` the server that answers is remembered under. The key is
    worked out when first asked for: a gateway with one server, or without warm routing, never
    asks (hashing an opening that holds images costs milliseconds)."""

    conversation: Callable[[], str | None] | None = None
    server: str | None = None

    @cached_property
    def key(self) -> str | None:
        return None if self.conversation is None else self.conversation()


def conversation_key(model: str, body: dict[str, Any], payload: dict[str, Any]) -> str | None:
    """The key of the conversation a request continues (see the module docstring), for the
    OpenAI ``body`` and the Ollama ``payload`` made from it; None when it has none (embeddings)."""
    for field in ("prompt_cache_key", "user", "safety_identifier"):
        value = body.get(field)
        if isinstance(value, str) and value:
            return _digest(model, field, value)
    messages = payload.get("messages")
    if isinstance(messages, list):
        first = next((m for m in messages if isinstance(m, dict) and m.get("role") == "user"), None)
        if first is None:
            return None
        # The system messages before it: a later one (an agent's) leaves the opening as it was.
        before = messages[: messages.index(first)]
        opening = [m for m in before if isinstance(m, dict) and m.get("role") == "system"]
        texts = [(m.get("content"), m.get("images")) for m in (*opening, first)]
        return _digest(model, "opening", json.dumps(texts, sort_keys=True, default=str))
    prompt = payload.get("prompt")
    if isinstance(prompt, str) and prompt:
        return _digest(model, "prompt", f"{payload.get('system')}\x00{prompt[:PROMPT_OPENING]}")
    return None


def _digest(model: str, kind: str, value: str) -> str:
    # A hash, not the text: the memory holds no prompt, and each entry is small.
    text = f"{model}\x00{kind}\x00{value}".encode("utf-8", "replace")
    return hashlib.blake2b(text, digest_size=16).hexdigest()


class Conversations:
    """The server that answered each recent conversation, per worker: an LRU with expiry."""

    def __init__(
        self,
        capacity: int = MAX_CONVERSATIONS,
        ttl: float = CONVERSATION_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capacity = capacity
        self._ttl = ttl
        self._clock = clock
        self._servers: collections.OrderedDict[str, tuple[str, float]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._servers)

    def server(self, key: str | None) -> str | None:
        """The server that answered the conversation ``key`` last, if remembered and fresh."""
        if key is None:
            return None
        with self._lock:
            found = self._servers.get(key)
            if found is None:
                return None
            if found[1] <= self._clock():
                del self._servers[key]
                return None
            return found[0]

    def remember(self, key: str | None, server: str) -> None:
        """``server`` answered the conversation ``key``; the oldest entry goes when full."""
        if key is None:
            return
        with self._lock:
            self._servers[key] = (server, self._clock() + self._ttl)
            self._servers.move_to_end(key)
            while len(self._servers) > self._capacity:
                self._servers.popitem(last=False)
