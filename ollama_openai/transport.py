"""HTTP/1.1 to Ollama under requests: the connection pool behind the session's adapter.

requests' ``HTTPAdapter`` hands every call to a urllib3 connection pool; for ``http://``
servers this module's ``OllamaPool`` takes its place (``pool_classes_by_scheme``). It keeps
requests' API, its exceptions and its adapter (and so ``responses`` in the tests), and does the
one thing a gateway needs: a request written in one ``sendall`` on a kept-alive connection,
a status line and headers read with a buffered reader, a body streamed as Ollama frames it
(chunked, Content-Length, or up to the close). urllib3's general machinery (retries, redirects,
proxies, three response layers and the e-mail parser http.client reads headers with) cost
about three quarters of a call's CPU (bench: 460 -> ~150 us a call).

It raises what urllib3 raises, so requests and ``ollama._mapped_errors`` read failures as
before: a refused connection, ``MaxRetryError`` of ``NewConnectionError``; a connect timeout,
of ``ConnectTimeoutError``; silence, ``ReadTimeoutError``; a connection closed before or while
answering, ``ProtocolError``.
"""

from __future__ import annotations

import http.client
import io
import select
import socket
import sys
import weakref
from collections.abc import Iterator, Mapping
from typing import Any, cast

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3 import HTTPHeaderDict
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import ConnectionPool, HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.util.timeout import Timeout

# The buffer each connection reads through. http.client's default is 8 KiB; Ollama's lines are
# a few hundred bytes, and a worker holding thousands of open streams holds one buffer each
# (1 KiB: 1 KiB less per open stream than 2, chunks/s the same within the bench's noise).
READ_BUFFER_BYTES = 1024
# As http.client: the longest status or header line, the most headers.
MAX_LINE_BYTES = 65536
MAX_HEADERS = 100


class OllamaAdapter(HTTPAdapter):
    """requests' adapter with ``OllamaPool`` for ``http://`` (and small read buffers for
    ``https://``), which finds its pool and the path to send once per URL: requests parses the
    URL, looks for a proxy and builds a pool key again on every call (proxies are never set:
    the session does not trust the environment)."""

    def __init__(self, pool_maxsize: int) -> None:
        super().__init__(pool_connections=1, pool_maxsize=pool_maxsize, max_retries=0)
        self.poolmanager.pool_classes_by_scheme = {
            "http": OllamaPool,
            "https": _SmallBufferHTTPSPool,
        }
        self._pools: dict[tuple[str, Any, Any], ConnectionPool] = {}
        self._paths: dict[str, str] = {}

    def get_connection_with_tls_context(
        self,
        request: PreparedRequest,
        verify: Any,
        proxies: Mapping[str, str] | None = None,
        cert: Any = None,
    ) -> ConnectionPool:
        if proxies:
            return super().get_connection_with_tls_context(request, verify, proxies, cert)
        origin = "/".join((request.url or "").split("/", 3)[:3])
        key = (origin, verify, cert)
        pool = self._pools.get(key)
        if pool is None:
            pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
            self._pools[key] = pool
        return pool

    def request_url(self, request: PreparedRequest, proxies: Mapping[str, str] | None) -> str:
        if proxies or request.url is None:
            return super().request_url(request, proxies)
        path = self._paths.get(request.url)
        if path is None:
            path = self._paths[request.url] = super().request_url(request, proxies)
        return path

    def build_response(self, req: PreparedRequest, resp: Any) -> Response:
        """requests' own, less copying the answer's cookies into the session's jar: Ollama
        sets none and the gateway sends none back (http.cookiejar's parse of every answer's
        headers was about 1% of a worker's CPU)."""
        response = Response()
        response.status_code = resp.status
        response.headers = CaseInsensitiveDict(resp.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = resp
        response.reason = resp.reason
        response.url = req.url.decode() if isinstance(req.url, bytes) else cast(str, req.url)
        response.request = req
        response.connection = self
        return response

    def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()
        super().close()


class OllamaPool(HTTPConnectionPool):
    """Kept-alive connections to one server, used last in first out. Only ``urlopen`` (as
    requests calls it) and ``close`` are its own; a body it cannot send in one piece (a
    generator, chunked) goes through urllib3's own machinery."""

    def __init__(self, host: str, port: int | None = None, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self._idle: list[_Connection] = []
        # As urllib3's pools: connections still kept are closed when the pool is collected.
        weakref.finalize(self, _close_all, self._idle)
        self._most_idle = max(1, int(kwargs.get("maxsize", 1)))
        host_port = host if port in (None, 80) else f"{host}:{port}"
        self._host_header = host_port.encode("idna")

    def urlopen(  # type: ignore[override]
        self,
        method: str,
        url: str,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        retries: Any = None,
        redirect: bool = True,
        assert_same_host: bool = True,
        timeout: Any = None,
        pool_timeout: int | None = None,
        release_conn: bool | None = None,
        chunked: bool = False,
        body_pos: Any = None,
        preload_content: bool = True,
        decode_content: bool = True,
        **response_kw: Any,
    ) -> Any:
        if chunked or not isinstance(body, (bytes, str, type(None))) or preload_content:
            return super().urlopen(
                method,
                url,
                body,
                headers,
                retries,
                redirect,
                assert_same_host,
                timeout,
                pool_timeout,
                release_conn,
                chunked,
                body_pos,
                preload_content,
                decode_content,
                **response_kw,
            )
        connect_timeout, read_timeout = _seconds(timeout)
        request = self._request_bytes(method, url, body, headers or {})
        connection = self._connection(url, connect_timeout)
        try:
            connection.sock.settimeout(read_timeout)
            try:
                connection.sock.sendall(request)
            except OSError as error:
                if isinstance(error, TimeoutError):
                    raise ReadTimeoutError(self, url, f"Write timed out. ({error})") from error
                raise ProtocolError("Connection aborted.", error) from error
            response = OllamaResponse.read_head(self, connection, method, url)
        except BaseException:
            # Failures, and a greenlet killed while it waited (its client hung up).
            connection.close()
            raise
        return response

    def close(self) -> None:
        _close_all(self._idle)
        super().close()

    def _request_bytes(
        self, method: str, url: str, body: bytes | str | None, headers: Mapping[str, str]
    ) -> bytes:
        if isinstance(body, str):
            body = body.encode("utf-8")
        lines = [f"{method} {url} HTTP/1.1".encode()]
        names = {name.lower() for name in headers}
        if "host" not in names:
            lines.append(b"Host: " + self._host_header)
        for name, value in headers.items():
            lines.append(f"{name}: {value}".encode("latin-1"))
        if body is not None and "content-length" not in names:
            lines.append(b"Content-Length: %d" % len(body))
        return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")

    def _connection(self, url: str, connect_timeout: float | None) -> _Connection:
        while True:
            try:
                # pop() is atomic: threads (the dev server's) may share the pool too.
                connection = self._idle.pop()
            except IndexError:
                break
            if connection.is_usable():
                return connection
            connection.close()
        try:
            sock = socket.create_connection((self.host, self.port or 80), connect_timeout)
        except TimeoutError as error:
            reason = ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={connect_timeout})"
            )
            raise MaxRetryError(self, url, reason) from error
        except OSError as error:
            reason = NewConnectionError(
                self,  # type: ignore[arg-type]
                f"Failed to establish a new connection: {error}",
            )
            raise MaxRetryError(self, url, reason) from error
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.num_connections += 1  # urllib3's count of connections opened
        return _Connection(sock)

    def _put(self, connection: _Connection) -> None:
        """Keep a connection whose answer was read to its end, for the next call."""
        if len(self._idle) < self._most_idle:
            self._idle.append(connection)
        else:
            connection.close()


def _close_all(connections: list[_Connection]) -> None:
    idle = list(connections)
    connections.clear()
    for connection in idle:
        connection.close()


class _Connection:
    """A socket and the buffered reader its answers are read through."""

    __slots__ = ("reader", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = cast(io.BufferedReader, sock.makefile("rb", READ_BUFFER_BYTES))

    def is_usable(self) -> bool:
        """Still open, with nothing unread: a server that closed it, or sent what nobody asked
        for, makes it readable."""
        return _nothing_to_read(self.sock)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def _nothing_to_read(sock: Any) -> bool:
    """Whether ``sock`` is quiet now (not closed, nothing arrived), asked of the standard
    library's poll without waiting (gevent's is written in Python: 14 us, this 2.7)."""
    poll = _unpatched_poll()
    poll.register(sock, select.POLLIN)
    return not poll.poll(0)


def _unpatched_poll() -> Any:
    """A ``select.poll()`` of the standard library's, even where gevent has patched select."""
    global _poll
    if _poll is None:
        monkey = sys.modules.get("gevent.monkey")
        if monkey is not None and monkey.is_module_patched("select"):
            _poll = monkey.get_original("select", "poll")
        else:
            _poll = select.poll
    return _poll()


# The standard library's select.poll, found at the first call (gevent patches before).
_poll: Any = None


def _seconds(timeout: Any) -> tuple[float | None, float | None]:
    if isinstance(timeout, Timeout):
        connect, read = timeout.connect_timeout, timeout.read_timeout
        return (
            connect if isinstance(connect, (int, float)) else None,
            read if isinstance(read, (int, float)) else None,
        )
    if isinstance(timeout, (int, float)):
        return float(timeout), float(timeout)
    return None, None


class OllamaResponse:
    """One answer: its status and headers, and its body as ``stream`` yields it. Read to its
    end, its connection goes back to the pool; closed before, the connection is dropped.

    requests reads ``status``, ``reason``, ``headers`` and ``stream``, and calls ``close`` and
    ``release_conn``; ``shutdown`` cuts the connection from another greenlet."""

    __slots__ = (
        "_chunked",
        "_connection",
        "_ended",
        "_left",
        "_pool",
        "_reusable",
        "_url",
        "headers",
        "reason",
        "status",
        "version",
    )

    def __init__(
        self,
        pool: OllamaPool,
        connection: _Connection,
        url: str,
        status: int,
        reason: str,
        headers: HTTPHeaderDict,
        length: int | None,
        chunked: bool,
        reusable: bool,
    ) -> None:
        self._pool: OllamaPool | None = pool
        self._connection: _Connection | None = connection
        self._url = url
        self.status = status
        self.reason = reason
        self.headers = headers
        self.version = 11
        self._left = length  # bytes of a Content-Length body still to read
        self._chunked = chunked
        self._reusable = reusable
        self._ended = length == 0

    @classmethod
    def read_head(
        cls, pool: OllamaPool, connection: _Connection, method: str, url: str
    ) -> OllamaResponse:
        """Read the status line and headers (interim 1xx answers skipped)."""
        reader = connection.reader
        try:
            while True:
                status_line = reader.readline(MAX_LINE_BYTES + 1)
                if not status_line:
                    raise ProtocolError(
                        "Connection aborted.",
                        http.client.RemoteDisconnected(
                            "Remote end closed connection without response"
                        ),
                    )
                version, status, reason = _status(status_line)
                headers = _headers(reader)
                # Interim answers (100 Continue, 103 Early Hints) come before the real one.
                if not 100 <= status < 200 or status == 101:
                    break
        except TimeoutError as error:
            raise ReadTimeoutError(pool, url, f"Read timed out. ({error})") from error
        except OSError as error:
            raise ProtocolError("Connection aborted.", error) from error
        connection_header = headers.get("connection", "").lower()
        reusable = version == "HTTP/1.1" and "close" not in connection_header
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return cls(pool, connection, url, status, reason, headers, 0, False, reusable)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return cls(pool, connection, url, status, reason, headers, None, True, reusable)
        length = headers.get("content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                raise ProtocolError(
                    "Connection aborted.", f"bad Content-Length {length!r}"
                ) from None
            return cls(pool, connection, url, status, reason, headers, size, False, reusable)
        # Framed by the close of the connection, which cannot then be used again.
        return cls(pool, connection, url, status, reason, headers, None, False, False)

    @property
    def closed(self) -> bool:
        return self._connection is None

    def body_source(self) -> tuple[io.BufferedReader, socket.socket] | None:
        """The buffered reader and socket the body comes through while the connection is
        held, for a reader that waits on the socket itself (``UpstreamStream.ready``)."""
        connection = self._connection
        if connection is None or self._ended:
            return None
        return connection.reader, connection.sock

    def stream(self, amt: int = 2**16, decode_content: bool | None = None) -> Iterator[bytes]:
        """The body in pieces of at most ``amt`` bytes, as Ollama sends it."""
        while not self._ended:
            data = self.read(amt)
            if data:
                yield data

    def read(self, amt: int | None = None, decode_content: bool | None = None) -> bytes:
        """Up to ``amt`` bytes of the body (all of it without), b"" at its end."""
        if amt is None:
            return b"".join(self.stream())
        if self._ended or self._connection is None:
            return b""
        try:
            data = self._read(self._connection.reader, amt)
        except TimeoutError as error:
            raise ReadTimeoutError(self._pool, self._url, f"Read timed out. ({error})") from error  # type: ignore[arg-type]
        except (OSError, ValueError) as error:
            raise ProtocolError(f"Connection broken: {error!r}", error) from error
        if self._ended:
            self._release(reuse=True)
        return data

    def _read(self, reader: io.BufferedReader, amt: int) -> bytes:
        if self._chunked:
            if not self._left:
                size_line = reader.readline(MAX_LINE_BYTES + 1)
                if not size_line.endswith(b"\n"):
                    raise _premature()
                try:
                    self._left = int(size_line.split(b";", 1)[0], 16)
                except ValueError:
                    raise ProtocolError(f"Bad chunk size {size_line[:40]!r}") from None
                if self._left == 0:
                    # The end: trailers, if any, then a blank line.
                    while reader.readline(MAX_LINE_BYTES + 1) not in (b"\r\n", b"\n", b""):
                        pass
                    self._ended = True
                    return b""
            data = reader.read1(min(amt, self._left))
            if not data:
                raise _premature()
            self._left -= len(data)
            if not self._left and reader.readline(MAX_LINE_BYTES + 1) not in (b"\r\n", b"\n"):
                raise _premature()
            return data
        if self._left is not None:
            data = reader.read1(min(amt, self._left))
            if not data:
                raise _premature()
            self._left -= len(data)
            self._ended = self._left == 0
            return data
        data = reader.read1(amt)
        if not data:
            self._ended = True
        return data

    def close(self) -> None:
        """Back to the pool when the body was read to its end, else dropped."""
        self._release(reuse=self._ended)

    def release_conn(self) -> None:
        self.close()

    def shutdown(self) -> None:
        """Cut the connection from another greenlet: its reader sees the end at once."""
        connection = self._connection
        if connection is not None:
            connection.sock.shutdown(socket.SHUT_RDWR)

    def _release(self, reuse: bool) -> None:
        connection, self._connection = self._connection, None
        pool, self._pool = self._pool, None
        if connection is None:
            return
        if reuse and self._reusable and pool is not None:
            pool._put(connection)
        else:
            connection.close()


def _premature() -> ProtocolError:
    return ProtocolError("Response ended prematurely")


def _status(line: bytes) -> tuple[str, int, str]:
    if len(line) > MAX_LINE_BYTES:
        raise ProtocolError("Connection aborted.", http.client.LineTooLong("status line"))
    version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ProtocolError(
            "Connection aborted.", http.client.BadStatusLine(line.decode("latin-1"))
        )
    return version, int(code), reason


def _headers(reader: io.BufferedReader) -> HTTPHeaderDict:
    headers = HTTPHeaderDict()
    for _ in range(MAX_HEADERS + 1):
        line = reader.readline(MAX_LINE_BYTES + 1)
        if len(line) > MAX_LINE_BYTES:
            raise ProtocolError("Connection aborted.", http.client.LineTooLong("header line"))
        if line in (b"\r\n", b"\n"):
            return headers
        if not line:
            raise ProtocolError(
                "Connection aborted.",
                http.client.RemoteDisconnected("Remote end closed connection in its headers"),
            )
        name, _, value = line.decode("latin-1").partition(":")
        headers.add(name.strip(), value.strip())
    raise ProtocolError(
        "Connection aborted.", http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
    )


# https:// goes through urllib3's own pool, with a small read buffer per connection.


class _SmallBufferResponse(http.client.HTTPResponse):
    """http.client's response reading through a READ_BUFFER_BYTES buffer."""

    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(cast(socket.socket, _SmallBufferSocket(sock)), *args, **kwargs)


class _SmallBufferSocket:
    # http.client only calls makefile() on the socket it is given.
    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def makefile(self, mode: str) -> Any:
        return self._sock.makefile(mode, READ_BUFFER_BYTES)


class _PooledConnection:
    """How urllib3 learns that a pooled HTTPS connection was closed before reusing it."""

    sock: Any

    @property
    def is_connected(self) -> bool:
        # urllib3 asks select.poll() with no timeout, before every call: under gevent that is
        # gevent's poll, written in Python.
        return self.sock is not None and _nothing_to_read(self.sock)


class _SmallBufferHTTPSConnection(_PooledConnection, HTTPSConnection):
    response_class = _SmallBufferResponse


class _SmallBufferHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _SmallBufferHTTPSConnection
