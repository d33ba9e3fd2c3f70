"""A small HTTP/1.1 load client on gevent sockets, light enough to measure the gateway.

Keep-alive connections, Content-Length and chunked bodies, and streams read event by event
(SSE from the gateway, NDJSON from Ollama). Callers must have run gevent's monkey patching.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

HOST = "127.0.0.1"


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port."""

    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self.port = port
        # Sent with every request (an Authorization header, for a gateway with keys on).
        self.extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self.sock = socket.create_connection((HOST, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def send(self, method: str, path: str, body: bytes | None = None) -> None:
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n{self.extra}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + (body or b""))

    def read_head(self) -> tuple[int, dict[str, str]]:
        status_line = self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed before the status line")
        status = int(status_line.split()[1])
        headers = {}
        while True:
            line = self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                return status, headers
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()

    def pieces(self, headers: dict[str, str]):
        """The body as it arrives: chunk by chunk, or all at once with Content-Length."""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self.reader.readline().split(b";")[0], 16)
                if size == 0:
                    self.reader.readline()
                    return
                data = self.reader.read(size)
                self.reader.readline()
                yield data
        elif "content-length" in headers:
            yield self.reader.read(int(headers["content-length"]))
        else:
            while data := self.reader.read1(65536):
                yield data

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        self.send(method, path, body)
        status, headers = self.read_head()
        return status, b"".join(self.pieces(headers))


def get_json(port: int, path: str) -> dict:
    conn = Connection(port)
    try:
        return json.loads(conn.request("GET", path)[1])
    finally:
        conn.close()


def post_json(port: int, path: str, payload: dict) -> dict:
    conn = Connection(port)
    try:
        return json.loads(conn.request("POST", path, json.dumps(payload).encode())[1])
    finally:
        conn.close()


@dataclass
class StreamResult:
    """What one streamed answer delivered."""

    text: str = ""
    events: int = 0
    first_byte: float | None = None  # seconds from the request to the first content event
    done: bool = False
    error: str | None = None
    arrivals: list[float] = field(default_factory=list)


def sse_text(event: bytes) -> str | None:
    """Content of one gateway SSE event; None for [DONE], comments and empty deltas."""
    if not event.startswith(b"data: {"):
        return None
    choices = json.loads(event[6:]).get("choices") or [{}]
    return (choices[0].get("delta") or {}).get("content")


def ndjson_text(line: bytes) -> str | None:
    """Content of one Ollama NDJSON line."""
    return (json.loads(line).get("message") or {}).get("content") or None


def read_stream(
    conn: Connection,
    path: str,
    payload: dict,
    separator: bytes,
    text_of: Callable[[bytes], str | None],
    stop_after_events: int | None = None,
) -> StreamResult:
    """Send a streamed request and read it event by event (``separator`` ends an event)."""
    result = StreamResult()
    started = time.monotonic()
    conn.send("POST", path, json.dumps(payload).encode())
    status, headers = conn.read_head()
    if status != 200:
        result.error = f"HTTP {status}"
        b"".join(conn.pieces(headers))
        return result
    pending = b""
    parts = []
    for data in conn.pieces(headers):
        pending += data
        *events, pending = pending.split(separator)
        for event in events:
            if not event:
                continue
            if event == b"data: [DONE]" or (
                event.startswith(b'{"model"') and b'"done":true' in event
            ):
                result.done = True
            if event.startswith(b'data: {"error"') or event.startswith(b'{"error"'):
                result.error = event.decode()
            piece = text_of(event)
            if piece:
                now = time.monotonic() - started
                if result.first_byte is None:
                    result.first_byte = now
                parts.append(piece)
                result.events += 1
                if stop_after_events is not None and result.events >= stop_after_events:
                    result.text = "".join(parts)
                    return result
    result.text = "".join(parts)
    return result
