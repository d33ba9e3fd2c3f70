"""Relaying Ollama's NDJSON stream to the client as OpenAI server-sent events.

The generator returned by ``relay`` is the response body. Its ``finally`` closes the upstream
connection on every exit path: the end of the answer, an upstream failure, and the client
going away (the WSGI server then closes the generator), so Ollama stops generating for nobody.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Protocol

from .errors import ApiError, sse_error_event
from .ollama import UpstreamStream

DONE_EVENT = b"data: [DONE]\n\n"
SSE_HEADERS = {
    "Cache-Control": "no-cache",
    # Tells Nginx not to buffer this response, so every event reaches the client as it is made.
    "X-Accel-Buffering": "no",
}


class StreamTranslator(Protocol):
    """The per-endpoint rules that turn Ollama lines into OpenAI chunks (see translate.py)."""

    def start(self) -> list[dict[str, Any]]: ...
    def piece(self, line: dict[str, Any]) -> dict[str, Any] | None: ...
    def finish(self, done_line: dict[str, Any]) -> list[dict[str, Any]]: ...


def sse_event(data: dict[str, Any]) -> bytes:
    """One ``data: <json>`` event."""
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def relay(upstream: UpstreamStream, translator: StreamTranslator) -> Iterator[bytes]:
    """SSE events for an open upstream stream; an upstream failure ends it with an error event."""
    try:
        for chunk in translator.start():
            yield sse_event(chunk)
        for line in upstream.lines():
            chunk = translator.piece(line)
            if chunk is not None:
                yield sse_event(chunk)
            if line.get("done"):
                for chunk in translator.finish(line):
                    yield sse_event(chunk)
                yield DONE_EVENT
    except ApiError as error:
        # The 200 status is already sent: the failure travels as an event the SDKs raise on.
        yield sse_error_event(error)
    finally:
        upstream.close()
