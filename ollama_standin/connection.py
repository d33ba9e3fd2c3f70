"""The client's connection, as the stand-in sees it while answering.

This module owns noticing a client that hangs up between tokens (as Go's server does, by
watching the socket rather than waiting for a write to fail) and hanging up on a client, as a
dying Ollama does.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time


class Connection:
    """The client's socket, watched so a hang-up is noticed between tokens, as Go's server does.

    Without a socket (a WSGI server that exposes none) waits are plain sleeps and a hang-up is
    noticed only when a write fails.
    """

    def __init__(self, sock: socket.socket | None) -> None:
        self.sock = sock

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; False as soon as the client has closed its connection."""
        if seconds <= 0:
            return True
        if self.sock is None:
            time.sleep(seconds)
            return True
        poller = select.poll()
        try:
            poller.register(self.sock, select.POLLIN | select.POLLHUP | select.POLLERR)
        except (OSError, ValueError):
            return False
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if not poller.poll(remaining * 1000):
                return True
            try:
                peeked = self.sock.recv(1, socket.MSG_PEEK)
            except OSError:
                return False
            if not peeked:
                return False
            # The client sent more bytes; it is still there but the socket can't be watched.
            time.sleep(remaining)
        return True

    def hang_up(self) -> None:
        """Close the connection under the client's feet, as a dying server does."""
        if self.sock is None:
            return
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
