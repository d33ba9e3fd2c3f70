"""Serving the stand-in on loopback: in a thread for tests, under gevent for the benchmark.

This module owns the servers: `StandinServer` (werkzeug, a thread per connection, on a free
port, stopped promptly even with streams open), `main()` behind `python -m ollama_standin
--port N` (gevent, thousands of streams, controlled over `/_standin/*`), and the two port
helpers every process started beside it needs, `free_port` and `wait_for_port`.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import threading
import time
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server

from ollama_standin.app import OllamaStandin

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    """Block until something accepts connections on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


def _no_delay(sock: socket.socket) -> None:
    # Go's net/http sets TCP_NODELAY on every connection; without it, a response written as
    # headers then body waits for the client's delayed ACK (40 ms) on kept-alive connections.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _QuietRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler without the access log, which tests don't need."""

    def setup(self) -> None:
        super().setup()
        _no_delay(self.connection)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class StandinServer:
    """The stand-in on a free loopback port, in a daemon thread; `with StandinServer() as s:`.

    `stop()` returns promptly even with streams open: it hangs up on them, as a killed Ollama
    would (so they count as disconnects).
    """

    def __init__(self, standin: OllamaStandin | None = None, port: int = 0) -> None:
        self.standin = standin if standin is not None else OllamaStandin()
        self._server = make_server(
            LOOPBACK, port, self.standin, threaded=True, request_handler=_QuietRequestHandler
        )
        # Don't let server_close() wait for the threads of open streams.
        self._server.block_on_close = False  # type: ignore[attr-defined]
        self.url = f"http://{LOOPBACK}:{self._server.port}"
        self._stopped = False
        # A short poll interval so that stop() returns in well under a second.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, hang up on open streams, close the listening socket."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self.standin.hang_up_all()
        self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> StandinServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve the stand-in under gevent so a benchmark can hold thousands of streams."""
    from gevent.pywsgi import WSGIHandler, WSGIServer

    parser = argparse.ArgumentParser(
        prog="python -m ollama_standin",
        description="Serve the Ollama stand-in under gevent; control it with /_standin/*.",
    )
    parser.add_argument("--port", type=int, default=11434)
    args = parser.parse_args(argv)

    class SocketHandler(WSGIHandler):
        def handle(self) -> None:
            _no_delay(self.socket)
            super().handle()

        def get_environ(self) -> dict[str, Any]:
            """Expose the socket so the stand-in notices a client hanging up between tokens."""
            environ = super().get_environ()
            environ["standin.socket"] = self.socket
            return environ

    server = WSGIServer(
        (LOOPBACK, args.port), OllamaStandin(), handler_class=SocketHandler, log=None, backlog=4096
    )
    print(f"Ollama stand-in listening on http://{LOOPBACK}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop(timeout=1)
