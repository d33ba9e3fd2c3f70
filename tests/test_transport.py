"""The connection pool under the session's adapter (transport.py), against a scripted server
that keeps connections alive as Ollama (Go's net/http) does: framing, reuse, and each way a
connection can fail, as the errors clients are told."""

import contextlib
import json
import socket
import threading
import time
from functools import partial

import pytest

from ollama_openai.errors import ApiError
from ollama_openai.ollama import OllamaClient
from ollama_openai.upstream_reader import UpstreamReader


class ScriptedServer:
    """Answers each request on a kept-alive connection with ``answer(request) -> bytes``;
    b"" hangs up without answering, ``None`` keeps silent. Counts connections accepted."""

    def __init__(self, answer):
        self.answer = answer
        self.accepted = 0
        self.requests = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._open = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        reader = conn.makefile("rb")
        try:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + reader.read(length)
                self.requests.append(request)
                reply = self.answer(request)
                if reply is None:
                    time.sleep(30)
                    return
                if reply == b"":
                    return
                conn.sendall(reply)
                if b"Connection: close" in reply.split(b"\r\n\r\n")[0]:
                    return
        except OSError:
            return
        finally:
            reader.close()
            conn.close()

    def hang_up_all(self):
        for conn in self._open:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def close(self):
        self._listener.close()
        self.hang_up_all()


@pytest.fixture
def scripted():
    servers = []

    def start(answer):
        server = ScriptedServer(answer)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def client_of():
    """An OllamaClient of a server, closed (with the connections it keeps) after the test."""
    clients = []

    def make(server, timeout=5.0):
        client = OllamaClient(server.url, timeout=timeout, connect_timeout=1)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def whole(body: dict, extra: str = "") -> bytes:
    data = json.dumps(body).encode()
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data


def chunked(lines: list[dict], end: bool = True, extension: bool = False) -> bytes:
    out = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    for line in lines:
        data = json.dumps(line).encode() + b"\n"
        size = b"%x" % len(data) + (b";name=value" if extension else b"")
        out += size + b"\r\n" + data + b"\r\n"
    if end:
        out += b"0\r\nX-Trailer: yes\r\n\r\n" if extension else b"0\r\n\r\n"
    return out


ANSWER = {"model": "llama3.2", "message": {"role": "assistant", "content": "Hi"}, "done": True}
LINES = [
    {"model": "llama3.2", "message": {"role": "assistant", "content": "One"}, "done": False},
    {"model": "llama3.2", "message": {"role": "assistant", "content": " two"}, "done": False},
    {"model": "llama3.2", "message": {"role": "assistant", "content": ""}, "done": True},
]


def test_answers_read_whole_reuse_one_connection(scripted, client_of):
    server = scripted(lambda request: whole(ANSWER))
    client = client_of(server)
    for _ in range(5):
        assert client.post("/api/chat", {"model": "llama3.2"}) == ANSWER
    assert server.accepted == 1


def test_a_finished_stream_gives_its_connection_back_for_the_next(scripted, client_of):
    server = scripted(lambda request: chunked(LINES))
    client = client_of(server)
    for _ in range(3):
        stream = client.stream("/api/chat", {"model": "llama3.2", "stream": True})
        lines = list(stream.lines())
        stream.abort()  # what the relay's end does: nothing, once the done line is read
        stream.close()
        assert [line["done"] for line in lines] == [False, False, True]
    assert server.accepted == 1


def test_a_stream_read_in_the_relays_greenlet_gives_its_connection_back(scripted, client_of):
    server = scripted(lambda request: chunked(LINES))
    client = client_of(server)
    for _ in range(3):
        reader = UpstreamReader(partial(client.stream, "/api/chat", {"model": "llama3.2"}))
        reader.wait_opened(5)
        lines = [reader.get(5)[1]]
        while not lines[-1]["done"]:
            lines.append(reader.get(5)[1])
        reader.close()
        assert [line["done"] for line in lines] == [False, False, True]
    assert server.accepted == 1


def test_a_stream_closed_before_its_end_drops_its_connection(scripted, client_of):
    server = scripted(lambda request: chunked(LINES))
    client = client_of(server)
    for _ in range(2):
        stream = client.stream("/api/chat", {"model": "llama3.2", "stream": True})
        next(stream.lines())
        stream.close()
    assert server.accepted == 2


def test_the_request_leaves_in_one_piece_with_its_host_and_length(scripted, client_of):
    server = scripted(lambda request: whole(ANSWER))
    client_of(server).post("/api/chat", {"model": "llama3.2", "messages": []})
    (request,) = server.requests
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /api/chat HTTP/1.1"
    port = server.url.rsplit(":", 1)[1]
    assert f"Host: 127.0.0.1:{port}".encode() in lines
    assert f"Content-Length: {len(body)}".encode() in lines
    assert b"Content-Type: application/json" in lines
    assert b"Accept-Encoding: identity" in lines
    assert json.loads(body) == {"model": "llama3.2", "messages": []}


def test_a_server_that_closes_each_connection_gets_a_new_one_each_call(scripted, client_of):
    server = scripted(lambda request: whole(ANSWER, "Connection: close\r\n"))
    client = client_of(server)
    assert [client.post("/api/chat", {}) for _ in range(3)] == [ANSWER] * 3
    assert server.accepted == 3


def test_a_kept_connection_the_server_closed_meanwhile_is_not_used(scripted, client_of):
    server = scripted(lambda request: whole(ANSWER))
    client = client_of(server)
    assert client.post("/api/chat", {}) == ANSWER
    server.hang_up_all()  # Ollama restarted, or dropped the idle connection
    time.sleep(0.1)
    assert client.post("/api/chat", {}) == ANSWER
    assert server.accepted == 2


def test_chunk_extensions_and_trailers_are_read_past(scripted, client_of):
    server = scripted(lambda request: chunked(LINES, extension=True))
    client = client_of(server)
    for _ in range(2):
        stream = client.stream("/api/chat", {"stream": True})
        assert [line["message"]["content"] for line in stream.lines()] == ["One", " two", ""]
        stream.close()
    assert server.accepted == 1


def test_interim_answers_are_skipped(scripted, client_of):
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
    server = scripted(lambda request: interim + whole(ANSWER))
    client = client_of(server)
    assert [client.post("/api/chat", {}) for _ in range(2)] == [ANSWER, ANSWER]
    assert server.accepted == 1


def test_a_body_that_ends_with_the_connection_is_read_to_its_end(scripted, client_of):
    data = json.dumps(ANSWER).encode()
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
    server = scripted(lambda request: reply + data)
    client = client_of(server)
    assert client.post("/api/chat", {}) == ANSWER
    assert client.post("/api/chat", {}) == ANSWER
    assert server.accepted == 2


def test_a_stream_cut_in_its_middle_is_a_502_upstream_error(scripted, client_of):
    server = scripted(lambda request: chunked(LINES[:2], end=False))
    client = client_of(server)
    stream = client.stream("/api/chat", {"stream": True})
    lines = stream.lines()
    next(lines), next(lines)
    server.hang_up_all()
    with pytest.raises(ApiError) as caught:
        next(lines)
    assert (caught.value.status, caught.value.code) == (502, "upstream_error")
    assert "in the middle of its answer" in caught.value.message
    stream.close()


def test_a_connection_closed_before_any_answer_is_a_503_worth_retrying(scripted, client_of):
    server = scripted(lambda request: b"")
    with pytest.raises(ApiError) as caught:
        client_of(server).post("/api/chat", {})
    assert (caught.value.status, caught.value.code) == (503, "ollama_unavailable")
    assert "closed the connection before answering" in caught.value.message
    assert caught.value.headers["x-should-retry"] == "true"


def test_a_status_line_that_is_not_http_is_a_503(scripted, client_of):
    server = scripted(lambda request: b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    with pytest.raises(ApiError) as caught:
        client_of(server).post("/api/chat", {})
    assert (caught.value.status, caught.value.code) == (503, "ollama_unavailable")


def test_silence_before_the_answer_is_a_504(scripted, client_of):
    server = scripted(lambda request: None)
    with pytest.raises(ApiError) as caught:
        client_of(server, timeout=0.3).post("/api/chat", {})
    assert (caught.value.status, caught.value.code) == (504, "upstream_timeout")


def test_nobody_listening_is_a_503_that_retrying_cannot_help():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = OllamaClient(f"http://127.0.0.1:{port}", timeout=5, connect_timeout=1)
    with pytest.raises(ApiError) as caught, contextlib.closing(client):
        client.post("/api/chat", {})
    assert (caught.value.status, caught.value.code) == (503, "ollama_unavailable")
    assert "Cannot reach Ollama" in caught.value.message
    assert caught.value.headers["x-should-retry"] == "false"
