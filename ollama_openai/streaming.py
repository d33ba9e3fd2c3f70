"""Relaying Ollama's NDJSON streams to the client as OpenAI server-sent events.

The relay takes the lines Ollama sent (read in its own greenlet by ``upstream_reader`` for one
choice, by ``pumps`` for several), sends ``: keep-alive`` comments while
Ollama is silent (a large model loading), and turns lines into events with the endpoint's
stream translator. Its ``finally`` closes the upstream connections on every exit path:
the end of the answer, an upstream failure, and the client leaving (the WSGI server then
closes the generator), so Ollama stops generating for nobody.
"""

from __future__ import annotations

import logging
import queue
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from .errors import ApiError, internal_error
from .exchange import Exchange
from .json_codec import encode_json
from .pumps import CLIENT_GONE, ClientWatch, PumpItem
from .translate.answers import Event, total_usage

log = logging.getLogger(__name__)

# An SSE comment: proxies and browsers see traffic, the SDKs skip it.
KEEPALIVE_COMMENT = b": keep-alive\n\n"
SSE_HEADERS = {
    "Cache-Control": "no-cache",
    # Tells Nginx not to buffer this response, so every event reaches the client as it is made.
    "X-Accel-Buffering": "no",
}


class Upstreams(Protocol):
    """Where the relay takes Ollama's lines: ``UpstreamPumps`` or ``UpstreamReader``.

    ``get`` raises ``queue.Empty`` after ``timeout`` s of silence; ``get_ready`` gives what is
    there now, else None; ``len`` is the number of choices; ``client_gone`` may be called
    from the event loop at any time.
    """

    def __len__(self) -> int: ...
    def get(self, timeout: float) -> PumpItem: ...
    def get_ready(self) -> PumpItem | None: ...
    def close(self) -> None: ...
    def client_gone(self) -> None: ...


class StreamTranslator(Protocol):
    """The per-endpoint rules that turn Ollama lines into SSE events (see translate).

    ``index`` is the choice a line belongs to; ``end`` gets the usage of all choices once
    every choice is done; ``fail`` gets the error object of a failure after the stream began.
    """

    def start(self) -> list[Event]: ...
    def piece(self, line: dict[str, Any], index: int) -> list[Event]: ...
    def finish(self, done_line: dict[str, Any], index: int) -> list[Event]: ...
    def end(self, totals: dict[str, int]) -> list[Event]: ...
    def fail(self, error: dict[str, Any]) -> list[Event]: ...


def sse_event(event: Event) -> bytes:
    """One event: ``event: <name>`` when it has a name, then ``data: <json or text>``."""
    name, data = event
    text = data.encode() if isinstance(data, str) else encode_json(data)
    if name is None:
        return b"data: " + text + b"\n\n"
    return b"event: " + name.encode() + b"\ndata: " + text + b"\n\n"


def relay(
    pumps: Upstreams,
    translator: StreamTranslator,
    keepalive_interval: float,
    exchange: Exchange,
    client: socket.socket | None = None,
    on_end: Callable[[], None] | None = None,
) -> Iterator[bytes]:
    """SSE events for pumped upstream streams; an upstream failure ends it with the
    translator's failure events.

    Choices interleave as their lines come; ``end`` follows the last choice's done line.

    ``client`` is the client's socket when the server exposes it, watched for hang-ups.
    ``on_end`` runs once the translator has made its last events (the end, or a failure) and
    before they are sent, so that what it does is done when the client sees the end.
    """
    watch = ClientWatch(client, pumps.client_gone)
    done_lines: list[dict[str, Any]] = []
    try:
        opening = b"".join(map(sse_event, translator.start()))
        # Ollama sends its first line with its headers: then the opening events and that
        # line's go out in one write (the client woken once); else the opening at once.
        ready: PumpItem | None = pumps.get_ready()
        if ready is None and opening:
            yield opening
            opening = b""
        while True:
            if ready is None:
                try:
                    ready = pumps.get(keepalive_interval)
                except queue.Empty:
                    yield KEEPALIVE_COMMENT
                    continue
            # Made in a function of its own, so that the lines and events of one write are
            # dropped before the next wait, which may be long (a worker holds thousands).
            # The first line goes out alone, at once; then each write takes what is there.
            first = exchange.first_token_at is None
            write, end = _write(ready, pumps, translator, exchange, done_lines, on_end, not first)
            ready = None
            if opening:
                write, opening = opening + write, b""
            if write:
                yield write
            if end is not None:
                if isinstance(end, ApiError):
                    raise end
                return
    except ApiError as error:
        yield from _failure(error, translator, exchange, on_end)
    except Exception:
        # A bug must not end a stream with no word: the client gets an error event, as for
        # Ollama's failures, and the traceback goes to the log.
        log.exception("unexpected error while relaying a stream")
        yield from _failure(internal_error(), translator, exchange, on_end)
    finally:
        watch.stop()
        pumps.close()


def _write(
    ready: PumpItem | None,
    pumps: Upstreams,
    translator: StreamTranslator,
    exchange: Exchange,
    done_lines: list[dict[str, Any]],
    on_end: Callable[[], None] | None,
    take_more: bool,
) -> tuple[bytes, ApiError | bool | None]:
    """The events of ``ready`` and, with ``take_more``, of every line already there (the client is
    behind Ollama) as one write: one send for a batch of events instead of one each, in order.

    With it, how the stream goes on: None, True once it has ended (the client gone, or the
    end written), or the ApiError that ends it once the write is sent.
    """
    batch: list[bytes] = []
    while ready is not None:
        index, item = ready
        if item is CLIENT_GONE:
            return b"", True
        if isinstance(item, ApiError):
            return b"".join(batch), item
        events = translator.piece(item, index)
        exchange.note_streamed(item)
        if events and exchange.first_token_at is None:
            exchange.first_token_at = time.monotonic()
        batch.extend(map(sse_event, events))
        if item.get("done"):
            done_lines.append(item)
            batch.extend(map(sse_event, translator.finish(item, index)))
            if len(done_lines) == len(pumps):
                totals = total_usage(done_lines)
                exchange.record_usage(totals)
                last = translator.end(totals)
                if on_end is not None:
                    on_end()
                batch.extend(map(sse_event, last))
                return b"".join(batch), True
        ready = pumps.get_ready() if take_more else None
    return b"".join(batch), None


def _failure(
    error: ApiError,
    translator: StreamTranslator,
    exchange: Exchange,
    on_end: Callable[[], None] | None,
) -> Iterator[bytes]:
    """The events that end a stream after a failure."""
    # The 200 status is already sent: the failure travels as events the SDKs raise on.
    exchange.note_error(error)
    last = translator.fail(error.to_dict()["error"])
    if on_end is not None:
        on_end()
    for event in last:
        yield sse_event(event)
