"""Reading Ollama's streams in the background, and watching the client for a hang-up.

An ``UpstreamPump`` reads one Ollama stream in its own thread (a greenlet under gunicorn's
gevent workers) and hands lines over through a ``Mailbox``, so the relay (``streaming``) can
send keep-alives while Ollama is silent and never blocks on Ollama when the client has gone.
The mailbox is bounded: when the client reads slower than Ollama writes, the pumps stop
reading, Ollama's socket fills and TCP pushes back, so a stream holds a few dozen lines
whatever its length. ``ClientWatch`` tells the pumps at once when the client closes its
connection.
"""

from __future__ import annotations

import collections
import logging
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .errors import ApiError, client_closed_request, internal_error
from .ollama import UpstreamStream

log = logging.getLogger(__name__)


_Result = TypeVar("_Result")

# Put in the pump's queue when the client has gone, so the relay stops at once.
CLIENT_GONE = object()


# What a pump hands over: the choice index, and an Ollama line, the ApiError that ended the
# stream, or CLIENT_GONE.
PumpItem = tuple[int, Any]


# Lines one request's pumps may hold for the relay: enough to smooth bursts, few enough that
# a client that stops reading costs kilobytes, not the whole answer.
MAILBOX_CAPACITY = 32


class Mailbox:
    """A bounded queue for one reader and several writers, lighter than ``queue.Queue``.

    Under gevent that queue costs about 2 KiB (three deques); this is one deque and two
    events, which matters when a worker holds thousands of open streams. A writer waits while
    the box is full, which is what stops a pump from reading Ollama for a slow client.
    """

    def __init__(self, capacity: int = MAILBOX_CAPACITY) -> None:
        self._items: collections.deque[PumpItem] = collections.deque()
        self._capacity = capacity
        self._ready = threading.Event()
        self._room = threading.Event()
        self._closed = False

    def put(self, item: PumpItem) -> bool:
        """Add ``item``, waiting while the box is full; False (the item dropped) once closed."""
        while len(self._items) >= self._capacity and not self._closed:
            # Cleared before the length is read again, so a get() in between is not missed.
            self._room.clear()
            if len(self._items) < self._capacity:
                break
            self._room.wait()
        if self._closed:
            return False
        self._items.append(item)
        self._ready.set()
        return True

    def get_ready(self) -> PumpItem | None:
        """The oldest item if one is there now, else None, without waiting."""
        if not self._items:
            return None
        item = self._items.popleft()
        if len(self._items) <= self._capacity // 2:
            self._room.set()
        return item

    def put_first(self, item: PumpItem) -> None:
        """Put ``item`` ahead of every other, without waiting (the client has gone)."""
        self._items.appendleft(item)
        self._ready.set()

    def get(self, timeout: float) -> PumpItem:
        """The oldest item; raises ``queue.Empty`` after ``timeout`` s with nothing put."""
        while not self._items:
            if not self._ready.wait(timeout):
                raise queue.Empty
            self._ready.clear()
        item = self._items.popleft()
        # Writers waiting for room are woken once the box is half empty, not at every item:
        # they then put lines in batches, with one switch between greenlets per batch.
        if len(self._items) <= self._capacity // 2:
            self._room.set()
        return item

    def close(self) -> None:
        """Refuse further puts and wake the writers waiting for room."""
        self._closed = True
        self._room.set()


class UpstreamPump:
    """Opens and reads one upstream stream in the background, putting its lines in ``items``.

    Items are ``(index, line)`` pairs and, last, ``(index, ApiError)`` when the stream failed;
    the pumps of one request (one per choice) share one queue. Call ``close`` when done: it
    drops the upstream connection if it is still open.
    """

    def __init__(
        self,
        open_stream: Callable[[], UpstreamStream],
        index: int,
        items: Mailbox,
    ) -> None:
        self._open_stream: Callable[[], UpstreamStream] | None = open_stream
        self._index = index
        self._items = items
        self._opened = threading.Event()
        self._lock = threading.Lock()
        self._upstream: UpstreamStream | None = None
        self._open_error: ApiError | None = None
        self._closed = False
        self._greenlet: Any = None
        gevent = patched_gevent()
        if gevent is not None:
            # A raw greenlet: lighter than a Thread or a gevent Greenlet, for thousands of
            # open streams.
            gevent.spawn_raw(self._run)
        else:
            threading.Thread(target=self._run, name="upstream-pump", daemon=True).start()

    def wait_opened(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for Ollama's answer to begin; raise its error if it failed.

        Failures that come this early (unknown model, Ollama down) still get their own HTTP
        status; later ones can only travel inside the stream.
        """
        if self._opened.wait(timeout) and self._open_error is not None:
            raise self._open_error

    def close(self) -> None:
        """Drop the upstream connection (Ollama then stops generating) if it is still open."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            upstream, opening = self._upstream, self._greenlet
        if upstream is not None:
            upstream.abort()
        elif opening is not None:
            # Still waiting for Ollama's first byte (a model loading): under gevent the
            # request can be interrupted, and urllib3 then closes its connection.
            patched_gevent().kill(opening)

    def _run(self) -> None:
        self._greenlet = _current_greenlet()
        # The opener holds the request's payload, which a long stream need not keep alive.
        open_stream, self._open_stream = self._open_stream, None
        assert open_stream is not None, "a pump runs once"
        try:
            upstream = open_stream()
        except ApiError as error:
            self._open_error = error
            self._items.put((self._index, error))
            return
        finally:
            self._opened.set()
        with self._lock:
            self._upstream = upstream
            self._greenlet = None
            closed = self._closed
        try:
            if not closed:
                lines = upstream.lines()
                first = next(lines, None)
                if first is not None and self._items.put((self._index, first)):
                    # Let the relay send the first token now: reading on while Ollama's lines
                    # are already buffered would hold it back until the buffer runs dry.
                    time.sleep(0)
                    del first
                    for line in lines:
                        # A full mailbox makes this wait (and other greenlets run); a closed
                        # one means the relay has gone.
                        if not self._items.put((self._index, line)):
                            break
        except ApiError as error:
            self._items.put((self._index, error))
        except Exception:
            # A bug must not leave the client waiting for TIMEOUT: report it in the stream.
            log.exception("unexpected error while reading from Ollama")
            self._items.put((self._index, internal_error()))
        finally:
            upstream.close()


def patched_gevent() -> Any:
    """The gevent module when it has patched threading (gunicorn's workers), else None."""
    gevent = sys.modules.get("gevent")
    if gevent is None or not gevent.monkey.is_module_patched("threading"):
        return None
    return gevent


class UpstreamPumps:
    """One pump per choice (n > 1, several prompts), all feeding one queue, read as one."""

    def __init__(self, openers: Sequence[Callable[[], UpstreamStream]]) -> None:
        self._items = Mailbox()
        self.pumps = [
            UpstreamPump(opener, index, self._items) for index, opener in enumerate(openers)
        ]

    def __len__(self) -> int:
        return len(self.pumps)

    def wait_opened(self, timeout: float) -> None:
        """``UpstreamPump.wait_opened`` for all, within one ``timeout``; a failure closes all."""
        deadline = time.monotonic() + timeout
        try:
            for pump in self.pumps:
                pump.wait_opened(max(deadline - time.monotonic(), 0))
        except ApiError:
            self.close()
            raise

    def get(self, timeout: float) -> PumpItem:
        """The next item of any pump; raises ``queue.Empty`` after ``timeout`` s of silence."""
        return self._items.get(timeout=timeout)

    def get_ready(self) -> PumpItem | None:
        """The next item of any pump if one is there now, else None."""
        return self._items.get_ready()

    def close(self) -> None:
        self._items.close()
        for pump in self.pumps:
            pump.close()

    def client_gone(self) -> None:
        """The client hung up: stop every pump and wake the relay, ahead of any line."""
        self.close()
        self._items.put_first((0, CLIENT_GONE))


def _current_greenlet() -> Any:
    """The running greenlet under gevent, else None."""
    gevent = patched_gevent()
    return None if gevent is None else gevent.getcurrent()


class ClientWatch:
    """Calls ``on_gone`` at once when the client closes its connection, even while Ollama is
    silent (the pumps' ``client_gone``, or what cancels a call).

    Without it, a hang-up is noticed only when a write fails, which can take two tokens or a
    keep-alive interval. It needs gevent (gunicorn's workers) and the client socket: it is an
    event-loop watcher, not a greenlet, so an open stream costs no extra stack. It must be
    stopped before the server closes that socket, whose number the next connection may reuse.
    """

    __slots__ = ("_on_gone", "_watcher")

    def __init__(self, client: socket.socket | None, on_gone: Callable[[], None]) -> None:
        self._on_gone = on_gone
        self._watcher: Any = None
        gevent = patched_gevent()
        if client is not None and gevent is not None:
            self._watcher = gevent.get_hub().loop.io(client.fileno(), 1)  # 1: readable
            self._watcher.start(self._readable, client)

    def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
            watcher.close()

    def _readable(self, client: socket.socket) -> None:
        # Readable with no data means the client closed its side; data means it sent something
        # (a next request), which is not ours to read. Either way there is nothing more to see.
        try:
            gone = client.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return
        except OSError:
            gone = True
        self.stop()
        if gone:
            self._on_gone()


class _ClientHungUp(BaseException):
    """Thrown into a call whose client hung up: a BaseException, so that no library's
    ``except Exception`` takes it for a failure to retry; urllib3 closes the connection."""


def call_watched(call: Callable[[], _Result], client: socket.socket | None) -> _Result:
    """``call()``, cancelled when the client hangs up first: its upstream connections are
    dropped (Ollama stops working for nobody) and a 499 is raised for the access log.

    Under gevent the call runs in the request's own greenlet and the hang-up is thrown into
    it (no greenlet of its own: one fewer spawn and two fewer switches per call); without
    gevent or a client socket it simply runs.
    """
    gevent = patched_gevent()
    if gevent is None or client is None:
        return call()
    caller = gevent.getcurrent()

    def hung_up() -> None:
        # Run by the event loop while the caller waits inside ``call`` (only there: the watch
        # stops before the caller does anything else), so the throw lands in the call.
        caller.throw(_ClientHungUp)

    watch = ClientWatch(client, hung_up)
    try:
        return call()
    except _ClientHungUp:
        raise client_closed_request() from None
    finally:
        watch.stop()
