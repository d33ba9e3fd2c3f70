"""OllamaClient: every HTTP call the gateway makes to one Ollama server's native API.

It owns that server's ``requests.Session`` (a connection pool shared by all greenlets of a
worker), the timeouts, and the translation of transport failures and Ollama error answers into
ApiError. Callers never see a ``requests`` exception. Model names travel only in JSON bodies,
never in URLs, so no request can make the gateway call an arbitrary path or host.
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import orjson
import requests
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from .errors import (
    RETRY_CANNOT_HELP,
    RETRY_MAY_HELP,
    ApiError,
    context_length_exceeded,
    model_not_found,
)
from .json_codec import encode_json
from .transport import OllamaAdapter, OllamaResponse

log = logging.getLogger(__name__)

# Connections kept open to Ollama per worker; above this, extra connections are opened and
# closed per request rather than making requests wait.
POOL_SIZE = 1024
# Ollama's error (0.12.6+) for a prompt longer than num_ctx under `truncate: false`: the one
# error told apart by its text, as its status (400, 500 on older servers) is shared by others.
CONTEXT_OVERFLOW = "input length exceeds the context length"
# Where each endpoint's prompt travels, in OpenAI's names: the param of a context overflow.
PROMPT_PARAMS = {"/api/chat": "messages", "/api/generate": "prompt", "/api/embed": "input"}
_MAX_ERROR_TEXT = 500
# Most bytes taken from a body at a time: a long line comes in a few large blocks (one HTTP
# chunk each, never waited for), and is split in linear time.
READ_BLOCK_BYTES = 64 * 1024
# A line or answer this large has been read without a pause: let other greenlets run.
YIELD_EVERY_BYTES = 1024 * 1024
# Largest line or answer read from Ollama unless MAX_UPSTREAM_BYTES says otherwise.
DEFAULT_MAX_ANSWER_BYTES = 64 * 1024 * 1024
# Most bytes of an error answer read for its message.
_MAX_ERROR_BODY = 64 * 1024


class OllamaClient:
    """Calls Ollama at ``base_url``; ``timeout`` bounds silence between bytes, not whole answers.

    ``max_answer_bytes`` bounds a line of a stream and a whole non-streamed answer: a larger
    one is a 502, never a worker filling its memory. Redirects are never followed: a payload
    goes to the configured server or nowhere.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float,
        connect_timeout: float,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_answer_bytes = max_answer_bytes
        self.session = requests.Session()
        # Proxy variables and .netrc are meant for the internet, not for a local Ollama; reading
        # them on every request also costs time.
        self.session.trust_env = False
        # Ollama never compresses; the body is relayed as it comes (transport reads no gzip).
        self.session.headers["Accept-Encoding"] = "identity"
        adapter = OllamaAdapter(pool_maxsize=POOL_SIZE)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._adapter = adapter
        # Each endpoint's request as the session prepares it (URL, default headers, the
        # credentials OLLAMA_BASE_URL may hold), made once and copied for every call.
        self._prepared: dict[tuple[str, str], requests.PreparedRequest] = {}

    def close(self) -> None:
        """Close the connections kept for the next calls."""
        self.session.close()

    def version(self) -> str:
        """Ollama's version; a quick probe that fails fast (health checks must not hang)."""
        probe_timeout = min(self.connect_timeout, self.timeout)
        answer = self._whole("GET", "/api/version", None, (probe_timeout, probe_timeout))
        return str(answer.get("version", "unknown"))

    def tags(self) -> dict[str, Any]:
        """The installed models (``/api/tags``)."""
        return self._whole("GET", "/api/tags", None, self._timeouts)

    def loaded(self) -> dict[str, Any]:
        """The models loaded in memory (``/api/ps``)."""
        return self._whole("GET", "/api/ps", None, self._timeouts)

    def show(self, model: str) -> dict[str, Any]:
        """What a model is and can do (``/api/show``): model_info, capabilities, parameters."""
        return self._whole("POST", "/api/show", {"model": model}, self._timeouts)

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A non-streamed call (``stream: false``): the whole answer as one JSON object."""
        answer = self._whole("POST", path, payload, self._timeouts, _overflow(path, payload))
        _check_answer(answer, "an answer")
        return answer

    def stream(self, path: str, payload: dict[str, Any]) -> UpstreamStream:
        """Start a streamed call; errors before the first line raise here, with their status."""
        with self._mapped_errors(reading_body=False):
            response = self._send("POST", path, payload, self._timeouts)
            overflow = _overflow(path, payload)
            try:
                _raise_for_status(response, model=payload.get("model"), overflow=overflow)
            except ApiError:
                response.close()
                raise
        # What a long stream no longer needs (about 2 KiB each with thousands open): the
        # request as sent, with its payload, and the parsed headers and cookies of the answer.
        # Nothing reads them once the status is checked. The overflow error is made again if
        # it is needed (its message is half a KiB).
        response.request = response.headers = response.cookies = None  # type: ignore[assignment]
        del overflow
        overflow_of = partial(_overflow_of, path, (payload.get("options") or {}).get("num_ctx"))
        return UpstreamStream(response, self._mapped_errors, self.max_answer_bytes, overflow_of)

    def _whole(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None,
        timeouts: tuple[float, float],
        overflow: ApiError | None = None,
    ) -> dict[str, Any]:
        """One call whose answer is read whole (at most ``max_answer_bytes``) as a JSON object;
        ``overflow`` is raised when Ollama says the prompt does not fit the context window."""
        model = None if payload is None else payload.get("model")
        with self._mapped_errors(reading_body=False):
            response = self._send(method, path, payload, timeouts)
            try:
                _raise_for_status(response, model, overflow)
                body = b"".join(_capped(response, self.max_answer_bytes, "an answer"))
            finally:
                # Back to the pool when it was read to the end, else the connection is dropped.
                response.close()
        return _json_object(body, "an answer")

    def _send(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None,
        timeouts: tuple[float, float],
    ) -> requests.Response:
        """Send one call through the session's adapter, its body unread (``stream=True``).

        ``Session.request`` would merge settings, look at the environment, carry cookies, run
        hooks and check for redirects on every call: about a tenth of a worker's CPU, and
        nothing Ollama needs. Redirects are never followed (see ``_raise_for_status``).
        """
        template = self._prepared.get((method, path))
        if template is None:
            headers = {"Content-Type": "application/json"} if method == "POST" else None
            request = requests.Request(method, f"{self.base_url}{path}", headers=headers)
            template = self._prepared[(method, path)] = self.session.prepare_request(request)
        prepared = template.copy()
        if payload is not None:
            # orjson: a long chat history is encoded about ten times faster (json_codec).
            prepared.prepare_body(data=encode_json(payload), files=None)
        return self._adapter.send(
            prepared,
            stream=True,
            timeout=timeouts,
            verify=True if self.session.verify is None else self.session.verify,
            cert=self.session.cert,
            proxies=self.session.proxies,
        )

    @property
    def _timeouts(self) -> tuple[float, float]:
        return (self.connect_timeout, self.timeout)

    @contextmanager
    def _mapped_errors(self, reading_body: bool) -> Iterator[None]:
        """Turn ``requests`` failures into ApiError, around a call or a streamed body."""
        try:
            yield
        except requests.ConnectTimeout:
            raise ApiError(
                503,
                f"Could not connect to Ollama at {self.base_url} within "
                f"{self.connect_timeout:g} s. Is it running and reachable?",
                code="ollama_unavailable",
                headers=RETRY_CANNOT_HELP,
            ) from None
        except requests.ReadTimeout:
            raise self._timeout_error() from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            cause = exc.args[0] if exc.args else None
            if isinstance(cause, ReadTimeoutError):
                # requests reports a read timeout inside a streamed body as a ConnectionError.
                raise self._timeout_error() from None
            if reading_body:
                # Only ever an SSE event: the 200 is sent before a streamed body is read.
                raise ApiError(
                    502,
                    "Ollama closed the connection in the middle of its answer.",
                    code="upstream_error",
                ) from None
            if isinstance(cause, ProtocolError):
                # Connected, then cut before any answer (a refused connection is no
                # ProtocolError): Ollama died or restarted while working on it. Unreachable
                # like a server that is down, but a retry may find it back.
                raise ApiError(
                    503,
                    f"Ollama at {self.base_url} closed the connection before answering; it may "
                    "have crashed or restarted.",
                    code="ollama_unavailable",
                    headers=RETRY_MAY_HELP,
                ) from None
            raise ApiError(
                503,
                f"Cannot reach Ollama at {self.base_url} (connection refused or reset). "
                "Is `ollama serve` running, and is OLLAMA_BASE_URL right?",
                code="ollama_unavailable",
                headers=RETRY_CANNOT_HELP,
            ) from None
        except requests.RequestException as exc:
            log.warning("request to Ollama failed: %s", exc)
            raise ApiError(
                502,
                f"The request to Ollama failed: {type(exc).__name__}.",
                code="upstream_error",
                headers=RETRY_CANNOT_HELP,
            ) from None

    def _timeout_error(self) -> ApiError:
        return ApiError(
            504,
            f"Ollama sent nothing for {self.timeout:g} s (TIMEOUT). The model may still be "
            "loading; try again or raise TIMEOUT.",
            code="upstream_timeout",
            headers=RETRY_CANNOT_HELP,
        )


class UpstreamStream:
    """An open NDJSON answer from Ollama. Iterate ``lines()`` once; always ``close()`` it.

    Closing before the end drops the connection, which makes Ollama stop generating.
    """

    # A worker holds thousands of open streams: no __dict__ each.
    __slots__ = (
        "_after_done",
        "_blocks",
        "_ended",
        "_failure",
        "_finished",
        "_heard_at",
        "_mapped_errors",
        "_max_line_bytes",
        "_on_close",
        "_overflow",
        "_response",
        "_splitter",
    )

    def __init__(
        self,
        response: requests.Response,
        mapped_errors: Any,
        max_line_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        overflow: Callable[[], ApiError] | None = None,
    ) -> None:
        self._response = response
        self._mapped_errors = mapped_errors
        self._max_line_bytes = max_line_bytes
        # What an error line saying the prompt does not fit the context window becomes.
        self._overflow = overflow
        self._on_close: list[Callable[[], None]] = []
        # Whether the done line was read: the answer is whole, and only its end is read on.
        self._ended = False
        self._finished = False
        self._blocks: Iterator[bytes] | None = None
        self._splitter = LineSplitter(max_line_bytes)
        # The lines of the done line's block after it, read by ``finish``.
        self._after_done: list[bytes] = []
        # A failure read after lines that were handed over first; raised at the next read.
        self._failure: ApiError | None = None
        # When Ollama last sent bytes, as ``ready`` saw: silence is bounded by TIMEOUT.
        self._heard_at = time.monotonic()

    def lines(self) -> Iterator[dict[str, Any]]:
        """Ollama's lines as dicts, ending with the ``done`` line; failures raise ApiError."""
        while not self._ended:
            yield from self.read_lines()
        # Read the end of the body, which Ollama sends right after its done line, once the
        # line is handed over: the connection then goes back to the pool and the next stream
        # needs no new connection (nor name lookup).
        self.finish()

    def read_lines(self, limit: int = 1) -> list[dict[str, Any]]:
        """The whole lines of Ollama's next block (none for part of a line), and of the blocks
        already here after it until there are ``limit`` lines, up to the ``done`` line; waits
        for Ollama only when ``ready(0)`` is False. Failures raise ApiError, after the lines
        that came before them."""
        if self._failure is not None:
            raise self._failure
        lines: list[dict[str, Any]] = []
        with self._mapped_errors(reading_body=True):
            if self._blocks is None:
                self._blocks = self._response.iter_content(READ_BLOCK_BYTES)
            while True:
                block = next(self._blocks, None)
                if block is None:
                    raws = [] if (tail := self._splitter.tail()) is None else [tail]
                else:
                    raws = self._splitter.feed(block)
                try:
                    for position, raw in enumerate(raws):
                        line = self._line(raw)
                        if line is not None:
                            lines.append(line)
                            if self._ended:
                                self._after_done = raws[position + 1 :]
                                return lines
                    if block is None:
                        raise ApiError(
                            502,
                            "Ollama ended its answer before it was complete (no final line).",
                            code="upstream_error",
                        )
                except ApiError as error:
                    if not lines:
                        raise
                    self._failure = error
                    return lines
                if len(lines) >= limit or not self.arrived():
                    return lines

    def arrived(self) -> bool:
        """Whether more of the body is here now (buffered or arrived), without waiting; False
        when that cannot be seen (an https:// server, read through urllib3)."""
        source = self._body_source()
        if source is None:
            return False
        buffered, sock = source
        if not _buffered_or_arrived(buffered, sock, sock.gettimeout()):
            return False
        self._heard_at = time.monotonic()
        return True

    def _body_source(self) -> tuple[Any, Any] | None:
        # The reader and socket of our transport's answer; None for urllib3's (https://).
        body = self._response.raw
        return body.body_source() if isinstance(body, OllamaResponse) else None

    def _line(self, raw: bytes) -> dict[str, Any] | None:
        """One raw line as a checked dict (None for a blank one); an error line raises."""
        if not raw or raw.isspace():
            return None
        line = _json_object(raw, "a line")
        if "error" in line:
            if self._overflow and CONTEXT_OVERFLOW in str(line["error"]):
                raise self._overflow()
            raise ApiError(502, f"Ollama failed: {line['error']}", code="upstream_error")
        _check_answer(line, "a line")
        if line.get("done"):
            self._ended = True
        return line

    @property
    def ended(self) -> bool:
        """Whether the done line was read: the answer is whole."""
        return self._ended

    def finish(self) -> None:
        """Once the done line is read, read the end of the body, so that the connection goes
        back to the pool; anything but blank lines is not read on (``close`` drops it)."""
        if not self._ended or self._finished:
            return
        self._finished = True
        with contextlib.suppress(ApiError), self._mapped_errors(reading_body=True):
            if any(not raw.isspace() for raw in self._after_done):
                return
            for block in self._blocks or ():
                if any(not raw.isspace() for raw in self._splitter.feed(block)):
                    return

    def ready(self, timeout: float) -> bool:
        """Whether Ollama's next bytes are here, waiting up to ``timeout`` s for them: when
        True, ``read_lines`` will not wait for Ollama (unless a line is cut mid-way). Ollama
        silent for TIMEOUT raises its ApiError, as a read would.

        True also when the connection is closed or cut (reading then says how it ended), and
        when what is buffered cannot be seen (an https:// server, read through urllib3: there
        the relay waits in the read, and sends no keep-alive while Ollama is silent mid-way).
        """
        source = self._body_source()
        if source is None:
            return True
        buffered, sock = source
        read_timeout = sock.gettimeout()
        if _buffered_or_arrived(buffered, sock, read_timeout):
            self._heard_at = time.monotonic()
            return True
        if timeout <= 0:
            return False
        if read_timeout is not None:
            timeout = min(timeout, self._heard_at + read_timeout - time.monotonic())
        if timeout > 0 and _wait_readable(sock, timeout):
            self._heard_at = time.monotonic()
            return True
        if read_timeout is not None and time.monotonic() - self._heard_at >= read_timeout:
            with self._mapped_errors(reading_body=True):
                raise requests.ReadTimeout
        return False

    def close(self) -> None:
        """Release the connection; call it from the thread that iterates ``lines()``."""
        self._response.close()
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            callback()

    def call_on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once, when the stream is closed (the end of the call to Ollama)."""
        self._on_close.append(callback)

    def abort(self) -> None:
        """Cut the connection from any thread: the reader sees its end, Ollama sees us leave.

        Closing the response while another thread reads it is not safe (its buffered reader
        raises), so urllib3 shuts the socket down instead and the reader then closes it. Once
        the done line is read, Ollama has finished: the reader keeps the connection for reuse.
        """
        if self._ended:
            return
        with contextlib.suppress(ValueError, RuntimeError, OSError):
            self._response.raw.shutdown()


class LineSplitter:
    """Splits a body read in blocks into lines in linear time whatever their length
    (requests' ``iter_lines`` joins its 512-byte blocks again for every block of a long
    line); a line over ``limit`` bytes raises a 502 as soon as it gets there."""

    __slots__ = ("_limit", "_pending", "_pending_bytes", "_unpaused_bytes")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._unpaused_bytes = 0

    def feed(self, block: bytes) -> list[bytes]:
        """The lines ``block`` completes; the rest waits for the next block."""
        lines = []
        start = 0
        while (end := block.find(b"\n", start)) >= 0:
            line = block[start:end]
            if self._pending:
                line = b"".join((*self._pending, line))
                self._pending, self._pending_bytes = [], 0
            if len(line) > self._limit:
                raise _too_large("a line", self._limit)
            lines.append(line)
            start = end + 1
        if start < len(block):
            self._pending.append(block[start:])
            self._pending_bytes += len(block) - start
            if self._pending_bytes > self._limit:
                raise _too_large("a line", self._limit)
        # A line or answer this large has been read without a pause: let other greenlets run.
        self._unpaused_bytes += len(block)
        if self._unpaused_bytes >= YIELD_EVERY_BYTES:
            self._unpaused_bytes = 0
            time.sleep(0)
        return lines

    def tail(self) -> bytes | None:
        """At the end of the body: the last line, when it has no newline."""
        if not self._pending:
            return None
        tail = b"".join(self._pending)
        self._pending, self._pending_bytes = [], 0
        return tail


def _buffered_or_arrived(buffered: Any, sock: Any, read_timeout: float | None) -> bool:
    """Whether ``buffered`` (a reader of ``sock``) holds bytes, or bytes (or the end) have
    arrived. Peeking with the socket's timeout at 0 reads what has arrived into the buffer,
    never waits and loses nothing."""
    try:
        sock.settimeout(0.0)
        return bool(buffered.peek(1))
    except ssl.SSLWantReadError:
        return False
    except (OSError, ValueError):
        return True
    finally:
        sock.settimeout(read_timeout)


def _wait_readable(sock: Any, timeout: float) -> bool:
    """Whether ``sock`` gets bytes (or its end) within ``timeout`` s; cooperative under gevent."""
    gevent = sys.modules.get("gevent")
    if gevent is None or not gevent.monkey.is_module_patched("select"):
        return bool(select.select([sock], [], [], timeout)[0])
    # Two watchers and a waiter: gevent's wait_read adds a Timeout (an exception object, half
    # a KiB) to each wait, and a worker holds thousands of streams waiting.
    hub = gevent.get_hub()
    waiter = gevent.hub.Waiter(hub)
    readable, timer = hub.loop.io(sock.fileno(), 1), hub.loop.timer(timeout)
    readable.start(waiter.switch, True)
    timer.start(waiter.switch, False)
    try:
        return bool(waiter.get())
    finally:
        readable.close()
        timer.close()


def _capped(response: requests.Response, limit: int, what: str) -> Iterator[bytes]:
    """The blocks of a body of at most ``limit`` bytes; a larger one raises a 502."""
    received = unpaused_bytes = 0
    for block in response.iter_content(READ_BLOCK_BYTES):
        received += len(block)
        if received > limit:
            raise _too_large(what, limit)
        yield block
        unpaused_bytes += len(block)
        if unpaused_bytes >= YIELD_EVERY_BYTES:
            unpaused_bytes = 0
            time.sleep(0)


def _too_large(what: str, limit: int) -> ApiError:
    return ApiError(
        502,
        f"Ollama sent {what} larger than MAX_UPSTREAM_BYTES ({limit} bytes); the gateway does "
        "not read it.",
        code="upstream_error",
        headers=RETRY_CANNOT_HELP,
    )


def _overflow(path: str, payload: dict[str, Any]) -> ApiError:
    """The 400 context_length_exceeded for a call whose prompt does not fit its window."""
    return _overflow_of(path, (payload.get("options") or {}).get("num_ctx"))


def _overflow_of(path: str, num_ctx: Any) -> ApiError:
    return context_length_exceeded(PROMPT_PARAMS.get(path), num_ctx)


def _raise_for_status(
    response: requests.Response, model: str | None, overflow: ApiError | None = None
) -> None:
    """Map an Ollama error answer (status + ``{"error": ...}``) to the ApiError for clients.

    Only a full queue (503) heals in seconds. Ollama's 500 is its runner failing on this
    request (a crash on load, a wrong option type): sent again, it fails again. ``overflow``
    is raised when Ollama says the prompt does not fit the context window. Ollama never
    redirects; a redirect comes from something else at that address and is not followed.
    """
    status = response.status_code
    if 300 <= status < 400:
        response.close()
        raise ApiError(
            502,
            f"Ollama answered {status} (a redirect to {response.headers.get('Location')!r}), "
            "which the gateway does not follow; check OLLAMA_BASE_URL.",
            code="upstream_error",
            headers=RETRY_CANNOT_HELP,
        )
    if status < 400:
        return
    message = _error_message(response)
    if status == 404 and model is not None:
        raise model_not_found(model)
    if overflow is not None and CONTEXT_OVERFLOW in message:
        raise overflow
    if status == 400:
        raise ApiError(400, f"Ollama rejected the request: {message}", code="ollama_bad_request")
    if status == 503:
        raise ApiError(
            503,
            f"Ollama is busy: {message}",
            code="ollama_busy",
            headers={"Retry-After": "1", **RETRY_MAY_HELP},
        )
    if status == 403 and not message:
        message = (
            "403 Forbidden with no body. Ollama refuses requests whose Host header is not local; "
            "check OLLAMA_BASE_URL and Ollama's OLLAMA_HOST/OLLAMA_ORIGINS."
        )
    raise ApiError(
        502,
        f"Ollama answered {status}: {message}",
        code="upstream_error",
        headers=RETRY_CANNOT_HELP,
    )


def _error_message(response: requests.Response) -> str:
    head = bytearray()
    for block in response.iter_content(READ_BLOCK_BYTES):
        head += block
        if len(head) >= _MAX_ERROR_BODY:
            break
    text = head.decode("utf-8", "replace")[:_MAX_ERROR_TEXT]
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"]
    return text.strip()


def _refuse_constant(name: str) -> Any:
    # Go's encoding/json cannot write NaN or Infinity: such a value is not Ollama's JSON.
    raise ValueError(f"{name} is not JSON")


# One decoder for every line: json.loads with an option builds a new one per call, and finding
# the encoding of bytes costs as much again (Ollama writes UTF-8).
_decode_json_stdlib = json.JSONDecoder(parse_constant=_refuse_constant).decode


def _decode_json(raw: bytes) -> Any:
    """Ollama's JSON text parsed by orjson (a streamed line in 0.4 us, the standard library
    1.5); what orjson refuses (NaN and Infinity, which Go cannot write, as well as lone
    surrogates and invalid JSON) is decided by the standard library, as before. (orjson reads
    an integer past 64 bits as a float; Go's counters never are.)"""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _decode_json_stdlib(raw.decode())


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    """Ollama's JSON ``what`` (an answer, a streamed line) as a dict; anything else is a 502.

    Something that is not Ollama's JSON (a proxy's page, another server) comes again on a retry.
    """
    try:
        value = _decode_json(raw)
    except (ValueError, RecursionError):
        raise ApiError(
            502,
            f"Ollama sent {what} that is not valid JSON.",
            code="upstream_error",
            headers=RETRY_CANNOT_HELP,
        ) from None
    if not isinstance(value, dict):
        raise ApiError(
            502,
            f"Ollama sent {what} that is not a JSON object.",
            code="upstream_error",
            headers=RETRY_CANNOT_HELP,
        )
    return value


def _check_answer(answer: dict[str, Any], what: str) -> None:
    """A 502 naming the field when a chat or generate answer holds one of the wrong type, so
    that nothing Ollama sends can break the translation (and end a stream with no error)."""
    for name, value in answer.items():
        valid = _FIELD_CHECKS.get(name)
        if valid is not None and not valid(value):
            raise ApiError(
                502,
                f"Ollama sent {what} whose {name} is not what Ollama sends.",
                code="upstream_error",
                headers=RETRY_CANNOT_HELP,
            )


# Text Ollama may leave out: a string or null.
_TEXT = (str, type(None))


def _is_text(value: Any) -> bool:
    return isinstance(value, _TEXT)


def _is_count(value: Any) -> bool:
    return value is None or (type(value) is int and value >= 0)


def _is_objects(value: Any) -> bool:
    return value is None or (
        isinstance(value, list) and all(isinstance(item, dict) for item in value)
    )


def _is_message(message: Any) -> bool:
    # Once per streamed token: isinstance with a tuple of types, no generator per field.
    if message is None:
        return True
    if not isinstance(message, dict):
        return False
    get = message.get
    if not (
        isinstance(get("role"), _TEXT)
        and isinstance(get("content"), _TEXT)
        and isinstance(get("thinking"), _TEXT)
    ):
        return False
    calls = get("tool_calls")
    return calls is None or (_is_objects(calls) and all(_is_call(call) for call in calls))


def _is_call(call: dict[str, Any]) -> bool:
    function = call.get("function")
    return function is None or (
        isinstance(function, dict) and isinstance(function.get("arguments"), dict | None)
    )


# The fields of chat and generate answers the translation reads, and the JSON types Ollama
# gives them (any may be absent or null); checked as they come, a few dict lookups a line.
_FIELD_CHECKS: dict[str, Callable[[Any], bool]] = {
    "response": _is_text,
    "thinking": _is_text,
    "done_reason": _is_text,
    "prompt_eval_count": _is_count,
    "eval_count": _is_count,
    "prompt_eval_cached_count": _is_count,
    "done": lambda value: value is None or isinstance(value, bool),
    "logprobs": _is_objects,
    "message": _is_message,
}
