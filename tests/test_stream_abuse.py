"""Clients and upstreams that abuse a stream: a reader that stops reading, huge lines, JSON
bombs, bodies that trickle in. Sizes and times are bounded so the file runs in well under a
minute; memory and latency bounds leave wide margins (the machine is shared)."""

import http.client
import json
import time

import pytest
import requests

from ollama_standin import rss_kib

MIB = 1024
HELLO = [{"role": "user", "content": "Tell me a long story"}]


def chat_body(**extra):
    return json.dumps({"model": "llama3.2", "messages": HELLO, **extra}).encode()


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
        chat_body(stream=True, max_tokens=10**9),
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
