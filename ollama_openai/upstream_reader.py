"""Reading one Ollama stream in the relay's own greenlet: a single choice's stream.

Where ``pumps`` gives every choice a greenlet of its own (n > 1 must be read concurrently),
one choice needs none once Ollama's answer has begun: the relay reads Ollama when the client
has taken the last events, waiting on Ollama's socket at most a keep-alive interval. A worker
holding thousands of open streams then keeps one suspended stack per stream instead of two,
and backpressure is TCP's own (nothing is read while a write to the client waits). Opening
the call still runs in its own greenlet, so that keep-alives flow while a model loads and a
hang-up cancels the wait; that greenlet ends when Ollama's headers arrive.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from .errors import ApiError, internal_error
from .ollama import UpstreamStream
from .pumps import CLIENT_GONE, MAILBOX_CAPACITY, PumpItem, patched_gevent

log = logging.getLogger(__name__)

# Seconds the relay waits, after the done line, for the end of Ollama's body.
FINISH_WAIT = 1.0


class UpstreamReader:
    """One upstream stream, read by the relay through ``UpstreamPumps``' interface.

    ``get`` waits for Ollama's next lines; ``get_ready`` hands over the lines that are here
    now, at most MAILBOX_CAPACITY between two ``get`` (one write to the client each).
    ``client_gone`` may come from the event loop while the relay waits: it cuts the upstream
    connection, which wakes the relay.
    """

    __slots__ = (
        "_closed",
        "_gone",
        "_lines",
        "_lock",
        "_open_error",
        "_open_stream",
        "_opened",
        "_opening",
        "_taken",
        "_upstream",
    )

    def __init__(self, open_stream: Callable[[], UpstreamStream]) -> None:
        self._open_stream: Callable[[], UpstreamStream] | None = open_stream
        self._opened = threading.Event()
        self._lock = threading.Lock()
        self._upstream: UpstreamStream | None = None
        self._open_error: ApiError | None = None
        # Lines read and not yet handed over, last first (a list: a deque costs 600 bytes).
        self._lines: list[dict[str, Any]] = []
        # Lines handed over since the last get(): one batch, one write to the client.
        # The first read takes one block of Ollama's: the first token is not held back while
        # the lines after it are parsed (get() counts from 0 afterwards).
        self._taken = MAILBOX_CAPACITY - 1
        self._gone = False
        self._closed = False
        gevent = patched_gevent()
        if gevent is not None:
            self._opening: Any = gevent.spawn_raw(self._open)
        else:
            self._opening = threading.Thread(target=self._open, name="upstream-open", daemon=True)
            self._opening.start()

    def __len__(self) -> int:
        return 1

    def wait_opened(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for Ollama's answer to begin; raise its error if it failed."""
        if self._opened.wait(timeout) and self._open_error is not None:
            raise self._open_error

    def get(self, timeout: float) -> PumpItem:
        """The next line; raises ``queue.Empty`` after ``timeout`` s of silence."""
        self._taken = 0
        while not self._lines:
            if self._gone:
                return (0, CLIENT_GONE)
            if not self._opened.wait(timeout):
                raise queue.Empty
            upstream = self._upstream
            if upstream is None:
                return (0, CLIENT_GONE if self._gone else self._open_error)
            if (failure := self._read(upstream, timeout)) is not None:
                return failure
        return self._take()

    def get_ready(self) -> PumpItem | None:
        """The next line if it is here now (read without waiting), else None."""
        if not self._lines:
            upstream = self._upstream
            if self._taken >= MAILBOX_CAPACITY or upstream is None or self._gone:
                return None
            if (failure := self._read(upstream, 0)) is not None:
                return failure
            if not self._lines:
                return None
        return self._take()

    def close(self) -> None:
        """Drop the upstream connection unless the answer was read to its end (then the
        connection goes back to the pool); call it from the relay."""
        with self._lock:
            self._closed = True
            upstream, self._upstream = self._upstream, None
        if upstream is None:
            self._cancel_opening()
            return
        # Ollama sends the end of its body right after the done line: read, it lets the
        # connection go back to the pool; not there soon, the connection is dropped.
        if upstream.ended and upstream.ready(FINISH_WAIT):
            upstream.finish()
        upstream.close()

    def client_gone(self) -> None:
        """The client hung up: cut the upstream connection now and wake the relay."""
        self._gone = True
        with self._lock:
            upstream = self._upstream
        if upstream is not None:
            upstream.abort()
        else:
            self._cancel_opening()

    def _take(self) -> PumpItem:
        self._taken += 1
        return (0, self._lines.pop())

    def _read(self, upstream: UpstreamStream, timeout: float) -> PumpItem | None:
        """Read Ollama's next block into the lines if it comes within ``timeout`` s (else
        ``queue.Empty``); the item that ends the stream, if any."""
        if upstream.ended:
            # After the done line there is nothing more to read: silence, as the relay's
            # protocol has it.
            if timeout > 0:
                time.sleep(timeout)
                raise queue.Empty
            return None
        try:
            # Without waiting, only what is seen to be here: an https:// answer, whose buffer
            # cannot be seen, would otherwise be waited for line after line up to a batch.
            if not (upstream.ready(timeout) if timeout > 0 else upstream.arrived()):
                if timeout > 0:
                    raise queue.Empty
                return None
            lines = upstream.read_lines(MAILBOX_CAPACITY - self._taken)
            lines.reverse()
            self._lines = lines
        except ApiError as error:
            return (0, CLIENT_GONE if self._gone else error)
        return None

    def _cancel_opening(self) -> None:
        # Still waiting for Ollama's first byte (a model loading): under gevent the request
        # can be interrupted, and urllib3 then closes its connection.
        gevent, opening = patched_gevent(), self._opening
        if gevent is not None and opening is not None:
            gevent.kill(opening)

    def _open(self) -> None:
        # The opener holds the request's payload, which a long stream need not keep alive.
        open_stream, self._open_stream = self._open_stream, None
        assert open_stream is not None, "a stream opens once"
        upstream = None
        try:
            upstream = open_stream()
        except ApiError as error:
            self._open_error = error
        except Exception:
            # A bug must not leave the client waiting with keep-alives: report it in the stream.
            log.exception("unexpected error while opening a stream from Ollama")
            self._open_error = internal_error()
        finally:
            with self._lock:
                closed = self._closed
                if not closed:
                    self._upstream = upstream
            self._opening = None
            self._opened.set()
        if closed and upstream is not None:
            upstream.close()
