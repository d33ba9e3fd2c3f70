"""Reading a request's JSON body: bounded in bytes and in time, then parsed with bounds.

A body must arrive whole within BODY_TIMEOUT (a client trickling it in holds a connection,
and WORKER_CONNECTIONS of them hold a worker) and hold at most MAX_REQUEST_BYTES, with a
Content-Length or chunked; ``schemas.json_text`` then bounds and parses it. The answers: 413
``request_too_large``, 408 ``request_timeout``, 400 ``invalid_body`` (a broken chunked
encoding, a body cut short) and ``invalid_content_type``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Request

from .errors import ApiError, bad_request
from .pumps import patched_gevent
from .schemas.json_text import parse_json, too_large

_READ_BYTES = 64 * 1024


class BodyTimeout(Exception):
    """BODY_TIMEOUT passed while the body was still arriving."""


def read_json(request: Request, timeout: float) -> Any:
    """The request's JSON body, read within ``timeout`` s and the request's
    ``max_content_length`` (MAX_REQUEST_BYTES), bounded and parsed."""
    if not request.is_json:
        raise bad_request(
            "The request body must be JSON, sent with Content-Type: application/json.",
            None,
            "invalid_content_type",
        )
    max_bytes = request.max_content_length
    assert max_bytes is not None, "create_app sets MAX_CONTENT_LENGTH"
    return parse_json(read_body(request, max_bytes, timeout))


def read_body(request: Request, max_bytes: int, timeout: float) -> bytes:
    """The whole body (Content-Length or chunked) within ``timeout`` s and ``max_bytes``."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise too_large(f"larger than {max_bytes} bytes")
    stream = request.environ["wsgi.input"]
    if length is None and not request.environ.get("wsgi.input_terminated"):
        # A server that does not frame chunked bodies: nothing can be read safely.
        return b""
    blocks, received = [], 0
    try:
        with _deadline(request.environ.get("gunicorn.socket"), timeout):
            while length is None or received < length:
                wanted = _READ_BYTES if length is None else min(_READ_BYTES, length - received)
                block = stream.read(wanted)
                if not block:
                    if length is not None:
                        raise _unreadable()
                    break
                received += len(block)
                if received > max_bytes:
                    raise too_large(f"larger than {max_bytes} bytes")
                blocks.append(block)
    except (BodyTimeout, TimeoutError):
        raise ApiError(
            408,
            f"The request body did not arrive within {timeout:g} s.",
            code="request_timeout",
        ) from None
    except ApiError:
        raise
    except Exception:
        # The WSGI server's own reader failed (gunicorn's InvalidChunkSize, a connection
        # reset): the server's exceptions are its own, hence the broad catch here only.
        raise _unreadable() from None
    return b"".join(blocks)


@contextmanager
def _deadline(client: socket.socket | None, seconds: float) -> Iterator[None]:
    """Raise BodyTimeout (TimeoutError without gevent) once ``seconds`` have passed."""
    gevent = patched_gevent()
    if gevent is not None:
        # A deadline for the whole body: a socket timeout would only bound each read, and a
        # client sending a byte a second would never reach it.
        with gevent.Timeout(seconds, BodyTimeout()):
            yield
    elif client is not None:
        client.settimeout(seconds)
        try:
            yield
        finally:
            client.settimeout(None)
    else:
        yield


def _unreadable() -> ApiError:
    return bad_request(
        "The request body could not be read: its chunked encoding is broken, or it ended "
        "before its Content-Length.",
        None,
        "invalid_body",
    )
