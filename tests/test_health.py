"""GET /health and the answers when Ollama is down, hanging or slow."""

import socket
import time

import openai
import pytest
import requests

from ollama_standin import free_port
from tests.conftest import SECURED_KEYS

HELLO = [{"role": "user", "content": "hi"}]


def test_healthy_when_ollama_answers(server, ollama):
    response = requests.get(f"{server.url}/health", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["ollama"], body["api"]) == (
        "healthy",
        "connected",
        "openai-compatible",
    )


@pytest.fixture(scope="module")
def gateway_without_ollama(gateway_factory):
    """A gateway whose OLLAMA_BASE_URL points at a port where nothing listens."""
    return gateway_factory(f"http://127.0.0.1:{free_port()}")


def test_unhealthy_when_ollama_is_down(gateway_without_ollama):
    response = requests.get(f"{gateway_without_ollama.url}/health", timeout=10)
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["ollama"]) == ("unhealthy", "disconnected")
    assert "127.0.0.1" in body["reason"]


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_down_raises_503_naming_the_url(gateway_without_ollama, stream):
    with openai.OpenAI(
        base_url=f"{gateway_without_ollama.url}/v1", api_key="k", max_retries=0
    ) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="llama3.2", messages=HELLO, stream=stream)
        assert caught.value.status_code == 503
        assert caught.value.body["code"] == "ollama_unavailable"
        assert "127.0.0.1" in caught.value.body["message"]
        assert caught.value.response.headers["x-should-retry"] == "false"


@pytest.fixture
def silent_ollama():
    """The URL of a socket that accepts connections (the kernel's backlog), never answering."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        yield f"http://127.0.0.1:{silent.getsockname()[1]}"


def test_health_answers_quickly_when_ollama_hangs(gateway_factory, silent_ollama):
    gateway = gateway_factory(silent_ollama, TIMEOUT="30", CONNECT_TIMEOUT="1")
    started = time.monotonic()
    response = requests.get(f"{gateway.url}/health", timeout=30)
    assert time.monotonic() - started < 5
    assert response.status_code == 503


def test_silent_ollama_is_504_after_timeout(gateway_factory, ollama_url, ollama):
    gateway = gateway_factory(ollama_url, TIMEOUT="1")
    ollama.delay_first_byte = 3
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0) as client:
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="llama3.2", messages=HELLO)
        assert caught.value.status_code == 504
        assert caught.value.body["code"] == "upstream_timeout"
        assert time.monotonic() - started < 2.9


def test_without_a_key_health_says_only_whether_it_is_healthy(secured_server, ollama):
    # The servers' addresses, versions and errors are for the gateway's users, not anyone.
    for headers in ({}, {"Authorization": "Bearer sk-wrong"}):
        response = requests.get(f"{secured_server.url}/health", headers=headers, timeout=10)
        assert response.status_code == 200
        assert response.json() == {
            "status": "healthy",
            "ollama": "connected",
            "api": "openai-compatible",
        }
    keyed = requests.get(
        f"{secured_server.url}/health",
        headers={"Authorization": f"Bearer {SECURED_KEYS['auth']}"},
        timeout=10,
    ).json()
    assert keyed["ollama_version"]
    assert [server["status"] for server in keyed["servers"]] == ["connected"]


def test_health_answers_within_a_second_each_time_while_ollama_hangs(
    gateway_factory, silent_ollama
):
    # Each probe takes CONNECT_TIMEOUT; callers get the last report after a second at most.
    gateway = gateway_factory(silent_ollama, TIMEOUT="30", CONNECT_TIMEOUT="3")
    assert requests.get(f"{gateway.url}/health", timeout=30).status_code == 503
    for _ in range(3):
        started = time.monotonic()
        response = requests.get(f"{gateway.url}/health", timeout=30)
        assert time.monotonic() - started < 2
        assert response.status_code == 503
        time.sleep(0.3)
