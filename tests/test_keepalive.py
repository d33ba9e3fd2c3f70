"""The gateway under gunicorn against the stand-in served as Ollama serves, keeping connections
alive (gevent's HTTP/1.1 server, where the other tests' werkzeug closes each one): calls share
connections, and Ollama restarting under kept connections costs no client a failed request."""

import openai
import pytest
import requests

from ollama_standin.processes import StandinProcess

HELLO = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def kept_alive():
    standin = StandinProcess()
    yield standin
    standin.stop()


def state(standin):
    return requests.get(f"{standin.url}/_standin/state", timeout=10).json()


@pytest.fixture
def client_of(gateway_factory):
    def client(standin):
        gateway = gateway_factory(standin.url, WEB_CONCURRENCY="1")
        return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)

    return client


def test_calls_share_kept_alive_connections(kept_alive, client_of):
    client = client_of(kept_alive)
    requests.post(f"{kept_alive.url}/_standin/reset", json={}, timeout=10)
    for _ in range(8):
        answer = client.chat.completions.create(model="llama3.2", messages=HELLO)
        assert answer.choices[0].message.content
        stream = client.chat.completions.create(model="llama3.2", messages=HELLO, stream=True)
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    counts = state(kept_alive)
    # 16 chats (and what the gateway asks on its own: tags, ps) one after another on one
    # worker: a connection or two, not one per call.
    assert counts["requests"] >= 16
    assert counts["connections"] <= 3


def test_ollama_restarted_under_kept_connections_costs_no_request(kept_alive, client_of):
    client = client_of(kept_alive)
    for stream in (False, True, False):
        client.chat.completions.create(model="llama3.2", messages=HELLO, stream=stream)
    # Ollama restarts: every connection the gateway keeps is now closed at the other end.
    kept_alive.stop()
    restarted = StandinProcess(kept_alive.port)
    try:
        answer = client.chat.completions.create(model="llama3.2", messages=HELLO)
        assert answer.choices[0].message.content
        stream = client.chat.completions.create(model="llama3.2", messages=HELLO, stream=True)
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    finally:
        restarted.stop()
