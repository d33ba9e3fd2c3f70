"""Streams under faults: clients leaving, slow and silent Ollama, shutdown, keep-alives."""

import json
import socket
import threading
import time

import openai
import pytest
import requests

from tests.conftest import eventually

HELLO = [{"role": "user", "content": "Tell me a long story"}]


@pytest.mark.parametrize("token_interval", [0.05, 3.0])
def test_client_leaving_closes_upstream_within_a_second(openai_client, ollama, token_interval):
    ollama.reply = " ".join(["word"] * 200)
    ollama.token_interval = token_interval
    stream = openai_client.chat.completions.create(model="llama3.2", messages=HELLO, stream=True)
    received = 0
    for chunk in stream:
        if chunk.choices[0].delta.content:
            received += 1
            if received == 1:
                break
    stream.close()
    closed_at = time.monotonic()
    # The stand-in notices within milliseconds when its client (the gateway) hangs up; with a
    # 3 s gap between tokens, only watching the client socket can make this fast.
    disconnects = eventually(lambda: ollama.disconnects)
    assert disconnects, "the gateway never closed its upstream"
    assert disconnects[-1] - closed_at < 1.0
    assert ollama.completed_streams == 0


def test_client_leaving_while_the_model_loads_closes_upstream(
    openai_client, ollama, gateway_factory, ollama_url
):
    gateway = gateway_factory(ollama_url, KEEPALIVE_INTERVAL="0.2")
    ollama.delay_first_byte = 3
    response = requests.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "llama3.2", "messages": HELLO, "stream": True},
        stream=True,
        timeout=10,
    )
    lines = response.iter_lines()
    assert next(lines).startswith(b"data: ")  # the role chunk comes at once
    response.close()
    closed_at = time.monotonic()
    disconnects = eventually(lambda: ollama.disconnects)
    assert disconnects, "the gateway never closed its upstream"
    assert disconnects[-1] - closed_at < 1.0


@pytest.mark.parametrize(
    ("path", "body", "upstream", "calls"),
    [
        ("/v1/chat/completions", {"messages": HELLO}, "/api/chat", 1),
        ("/v1/chat/completions", {"messages": HELLO, "n": 2}, "/api/chat", 2),
        ("/v1/completions", {"prompt": "Once"}, "/api/generate", 1),
        ("/v1/embeddings", {"model": "nomic-embed-text", "input": "hi"}, "/api/embed", 1),
        ("/v1/responses", {"input": "hi"}, "/api/chat", 1),
    ],
    ids=["chat", "chat-n-2", "completion", "embeddings", "responses"],
)
def test_a_client_leaving_cancels_a_request_that_is_not_streamed(
    server, ollama, path, body, upstream, calls
):
    # The model loads for 5 s; the client gives up after it has asked.
    ollama.delay_first_byte = 5
    request_id = f"leaves-{path.rsplit('/', 1)[-1]}-{calls}"
    data = json.dumps({"model": "llama3.2", **body}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
        client.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"X-Request-ID: {request_id}\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        asked = eventually(
            lambda: [r for r in ollama.requests if r.path == upstream],
            lambda found: len(found) == calls,
        )
        assert len(asked) == calls
    closed_at = time.monotonic()
    disconnects = eventually(lambda: ollama.disconnects, lambda found: len(found) == calls)
    # Ollama stops working for nobody at once, not when its answer is ready.
    assert len(disconnects) == calls
    assert disconnects[-1] - closed_at < 1.0
    log = eventually(server.log, lambda text: f"request_id={request_id} " in text)
    line = next(line for line in log.splitlines() if f"request_id={request_id} " in line)
    assert " status=499 " in line


@pytest.fixture(scope="module")
def strict_gateway(gateway_factory, ollama_url):
    """A gateway with a 1 s TIMEOUT and keep-alives every 0.3 s."""
    return gateway_factory(ollama_url, TIMEOUT="1", KEEPALIVE_INTERVAL="0.3")


def test_a_stream_longer_than_timeout_is_never_cut(strict_gateway, ollama):
    ollama.reply = "one two three four five six seven"
    ollama.token_interval = 0.6  # 7 tokens: about 4 s in all, each gap below TIMEOUT
    with openai.OpenAI(base_url=f"{strict_gateway.url}/v1", api_key="k", max_retries=0) as client:
        stream = client.chat.completions.create(model="llama3.2", messages=HELLO, stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
        assert text == ollama.replies[-1]


def test_silence_longer_than_timeout_mid_stream_ends_with_an_error_event(strict_gateway, ollama):
    ollama.reply = "one two three"
    ollama.token_interval = 2.0
    with openai.OpenAI(base_url=f"{strict_gateway.url}/v1", api_key="k", max_retries=0) as client:
        stream = client.chat.completions.create(model="llama3.2", messages=HELLO, stream=True)
        with pytest.raises(openai.APIError) as caught:
            list(stream)
        assert caught.value.body["code"] == "upstream_timeout"


def test_keepalive_comments_while_ollama_is_silent(gateway_factory, ollama_url, ollama):
    gateway = gateway_factory(ollama_url, KEEPALIVE_INTERVAL="0.2", TIMEOUT="5")
    ollama.delay_first_byte = 1.0
    response = requests.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "llama3.2", "messages": HELLO, "stream": True},
        stream=True,
        timeout=10,
    )
    assert response.status_code == 200
    events = [line for line in response.iter_lines() if line]
    first_content = next(
        i for i, e in enumerate(events) if b'"content":"' in e and b'"role"' not in e
    )
    keepalives = [i for i, e in enumerate(events) if e == b": keep-alive"]
    assert len(keepalives) >= 3
    assert max(keepalives) < first_content
    assert events[-1] == b"data: [DONE]"


def test_sdk_ignores_keepalive_comments(gateway_factory, ollama_url, ollama):
    gateway = gateway_factory(ollama_url, KEEPALIVE_INTERVAL="0.2", TIMEOUT="5")
    ollama.delay_first_byte = 0.7
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0) as client:
        stream = client.chat.completions.create(model="llama3.2", messages=HELLO, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream) == ollama.replies[-1]


def test_graceful_shutdown_lets_a_running_stream_finish(gateway_factory, ollama_url, ollama):
    # Long enough for the 2 s stream; the tests' own default is 1 s.
    gateway = gateway_factory(ollama_url, GRACEFUL_TIMEOUT="30")
    ollama.reply = "a b c d e f g h i j"
    ollama.token_interval = 0.2
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0) as client:
        stream = client.chat.completions.create(model="llama3.2", messages=HELLO, stream=True)
        chunks = iter(stream)
        text = next(chunks).choices[0].delta.content or ""
        stopper = threading.Thread(target=gateway.stop)
        stopper.start()
        text += "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    stopper.join(30)
    assert text == ollama.replies[-1]
    assert gateway.process.returncode == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{gateway.url}/health", timeout=2)
