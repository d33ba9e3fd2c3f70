"""Clients and upstreams that abuse a stream: a reader that stops reading, huge lines, JSON
bombs, bodies that trickle in. Sizes and times are bounded so the file runs in well under a
minute; memory and latency bounds leave wide margins (the machine is shared)."""

import contextlib
import http.client
import json
import select
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from ollama_standin import rss_kib
from tests.conftest import eventually

MIB = 1024
HELLO = [{"role": "user", "content": "Tell me a long story"}]


def chat_body(**extra):
    return json.dumps({"model": "llama3.2", "messages": HELLO, **extra}).encode()


def post_chat(gateway, **extra):
    return requests.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "llama3.2", "messages": HELLO, **extra},
        timeout=30,
    )


def sse_content(response):
    """The text of a chat stream read from an http.client response, or the error event."""
    text = []
    for raw in response:
        line = raw.strip()
        if not line.startswith(b"data: "):
            continue
        if line == b"data: [DONE]":
            return "".join(text)
        event = json.loads(line[len(b"data: ") :])
        if "error" in event:
            return event
        for choice in event["choices"]:
            text.append(choice["delta"].get("content") or "")
    raise AssertionError("the stream ended without [DONE]")


@pytest.fixture(scope="module")
def lone_worker(gateway_factory, ollama_url):
    """A gateway with one worker, whose memory and event loop one test can watch."""
    return gateway_factory(ollama_url, WEB_CONCURRENCY="1")


def test_a_client_that_stops_reading_costs_the_worker_a_few_lines(lone_worker, ollama):
    tokens = 100_000
    ollama.reply = " ".join(f"w{i}" for i in range(tokens))
    worker = lone_worker.worker_pid()
    requests.get(f"{lone_worker.url}/v1/models", timeout=10)  # warm up
    before = rss_kib(worker)
    client = http.client.HTTPConnection("127.0.0.1", lone_worker.port, timeout=60)
    client.request(
        "POST",
        "/v1/chat/completions",
        # A window that holds the whole answer: the stand-in, as Ollama, stops at a full one.
        chat_body(stream=True, max_tokens=10**9, options={"num_ctx": 131072}),
        {"Content-Type": "application/json"},
    )
    response = client.getresponse()
    assert response.status == 200
    # Read nothing for 10 s while Ollama could stream the whole answer many times over; the
    # worker keeps serving others meanwhile.
    latencies, peak = [], before
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        started = time.monotonic()
        assert requests.get(f"{lone_worker.url}/v1/models", timeout=30).status_code == 200
        latencies.append(time.monotonic() - started)
        peak = max(peak, rss_kib(worker))
        time.sleep(0.2)
    # Then the whole answer arrives, intact.
    assert sse_content(response) == ollama.reply
    client.close()
    # Without backpressure the worker held the whole answer: about 100 MiB more.
    assert peak - before < 30 * MIB, f"{before / MIB:.0f} -> {peak / MIB:.0f} MiB"
    latencies.sort()
    assert latencies[len(latencies) // 2] < 0.1, latencies
    assert latencies[-1] < 1.0, latencies


def test_a_client_that_stops_reading_then_leaves_stops_ollama(lone_worker, ollama):
    ollama.reply = " ".join(f"w{i}" for i in range(100_000))
    client = http.client.HTTPConnection("127.0.0.1", lone_worker.port, timeout=60)
    client.request(
        "POST",
        "/v1/chat/completions",
        # A window that holds the whole answer: the stand-in, as Ollama, stops at a full one.
        chat_body(stream=True, max_tokens=10**9, options={"num_ctx": 131072}),
        {"Content-Type": "application/json"},
    )
    assert client.getresponse().status == 200
    time.sleep(1)  # the gateway stops reading Ollama: the answer waits in Ollama
    client.close()
    closed_at = time.monotonic()
    disconnects = eventually(lambda: ollama.disconnects)
    assert disconnects, "the gateway never closed its upstream"
    assert disconnects[-1] - closed_at < 1.0
    assert ollama.completed_streams == 0


# --- Ollama's side: huge lines, huge answers. ---


def test_a_4_mib_line_is_read_in_moments(lone_worker, ollama):
    # Joining 512-byte blocks again for each block took 13 s for this line, blocking the worker.
    ollama.reply = "Short."
    ollama.done_fields = {"padding": "x" * (4 * 1024 * 1024)}
    started = time.monotonic()
    response = post_chat(lone_worker, stream=True)
    assert response.status_code == 200
    assert b"data: [DONE]" in response.content
    assert time.monotonic() - started < 3


def test_a_long_generate_context_is_read_in_moments(lone_worker, ollama):
    # /api/generate's last line carries the token ids of prompt and answer: 500,000 here.
    ollama.done_fields = {"context": list(range(500_000))}
    started = time.monotonic()
    for stream in (True, False):
        response = requests.post(
            f"{lone_worker.url}/v1/completions",
            json={"model": "llama3.2", "prompt": "Once", "stream": stream},
            timeout=30,
        )
        assert response.status_code == 200
    assert time.monotonic() - started < 3


@pytest.fixture(scope="module")
def small_answers(gateway_factory, ollama_url):
    """A gateway that reads at most 1 MiB of any one Ollama line or answer."""
    return gateway_factory(ollama_url, MAX_UPSTREAM_BYTES=str(1024 * 1024))


@pytest.mark.parametrize("stream", [True, False])
def test_an_answer_over_max_upstream_bytes_is_a_502(small_answers, ollama, stream):
    ollama.done_fields = {"padding": "x" * (2 * 1024 * 1024)}
    response = post_chat(small_answers, stream=stream)
    if stream:
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line.startswith(b"data: ")]
        error = json.loads(events[-1][len(b"data: ") :])["error"]
    else:
        assert response.status_code == 502
        error = response.json()["error"]
    assert error["code"] == "upstream_error"
    assert "MAX_UPSTREAM_BYTES" in error["message"]
    # The worker is fine: the next answer comes.
    ollama.done_fields = None
    assert post_chat(small_answers).json()["choices"][0]["message"]["content"]


# --- The client's side: JSON bombs, bodies and headers that trickle in. ---


def test_json_bombs_are_refused_before_they_cost_the_worker_anything(lone_worker, ollama):
    # 4 MiB of {}: parsed, 100 MiB and half a second each, three at once.
    bomb = b'{"model": "llama3.2", "metadata": [' + b"{}," * (4 * 1024 * 1024 // 3 - 20) + b"{}]}"
    worker = lone_worker.worker_pid()
    before = rss_kib(worker)

    def send(_):
        return requests.post(
            f"{lone_worker.url}/v1/chat/completions",
            data=bomb,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )

    started = time.monotonic()
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(send, range(3)))
    assert time.monotonic() - started < 5
    for answer in answers:
        assert (answer.status_code, answer.json()["error"]["code"]) == (413, "request_too_large")
    assert rss_kib(worker) - before < 30 * MIB
    assert not ollama.requests


def send_slowly(port, at_once, slowly, interval=0.2):
    """Send ``at_once``, then ``slowly`` a byte every ``interval`` s until the server answers
    or closes; all the server sent back (nothing when it closed without a word)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(at_once)
        for byte in slowly:
            if select.select([sock], [], [], interval)[0]:
                break
            sock.sendall(bytes([byte]))
        received = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                received += chunk
        return received


@pytest.fixture(scope="module")
def few_connections(gateway_factory, ollama_url):
    """A gateway whose worker takes 10 connections, with a 1 s BODY_TIMEOUT."""
    return gateway_factory(ollama_url, WORKER_CONNECTIONS="10", BODY_TIMEOUT="1")


def test_slow_bodies_and_headers_cannot_hold_the_worker(few_connections, ollama):
    body = json.dumps({"model": "llama3.2", "messages": HELLO}).encode()
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    with ThreadPoolExecutor(11) as pool:
        # Ten uploads that send their headers at once, then a byte of body every 0.2 s (16 s
        # for the whole body): every connection of the worker is taken.
        uploads = [pool.submit(send_slowly, few_connections.port, head, body) for _ in range(10)]
        time.sleep(0.3)
        started = time.monotonic()
        health = requests.get(f"{few_connections.url}/health", timeout=30)
        waited = time.monotonic() - started
        # Headers sent a byte every 0.2 s: gunicorn gives them 5 s (its keepalive).
        started = time.monotonic()
        assert send_slowly(few_connections.port, b"", head) == b""
        closed_after = time.monotonic() - started
        answers = [upload.result() for upload in uploads]
    assert health.status_code == 200
    assert waited < 3, f"/health waited {waited:.1f} s for a connection"
    for answer in answers:
        status, _, text = answer.partition(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 408 "), answer
        assert json.loads(text)["error"]["code"] == "request_timeout"
    assert closed_after < 7
    assert "/api/chat" not in {request.path for request in ollama.requests}
