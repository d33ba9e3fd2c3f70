"""Stored responses across processes and keys: two gunicorn workers, two gateway instances on
one SQLite file or one Redis, another key's responses, and a store that does not answer."""

import socket

import openai
import pytest
import requests

from tests.conftest import SECURED_KEYS, secured_client


def fresh_client(gateway, key="test-key"):
    """The SDK with its own connection pool: each request may reach another worker."""
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def test_a_conversation_continues_whatever_worker_answers(secured_server, ollama):
    key = SECURED_KEYS["responses"]
    with fresh_client(secured_server, key) as client:
        response = client.responses.create(model="llama3.2", input="turn 0")
    for turn in range(1, 16):
        with fresh_client(secured_server, key) as client:
            response = client.responses.create(
                model="llama3.2", input=f"turn {turn}", previous_response_id=response.id
            )
    sent = ollama.last_request("/api/chat").body["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == [f"turn {n}" for n in range(16)]


def test_another_keys_response_is_as_unknown(secured_server, ollama):
    with secured_client(secured_server, "responses") as owner:
        mine = owner.responses.create(model="llama3.2", input="secret plans")
    with secured_client(secured_server, "responses-other") as other:
        with pytest.raises(openai.NotFoundError) as caught:
            other.responses.retrieve(mine.id)
        assert caught.value.body["message"] == f"Response with id '{mine.id}' not found."
        with pytest.raises(openai.NotFoundError):
            other.responses.delete(mine.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.input_items.list(mine.id)
        with pytest.raises(openai.BadRequestError) as caught:
            other.responses.create(model="llama3.2", input="x", previous_response_id=mine.id)
        assert caught.value.body["code"] == "previous_response_not_found"
    with secured_client(secured_server, "responses") as owner:
        assert owner.responses.retrieve(mine.id).output_text == mine.output_text


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_two_gateway_instances_share_one_store(
    gateway_factory, ollama_url, ollama, tmp_path, redis_url, backend
):
    uri = f"sqlite://{tmp_path / 'shared.sqlite3'}" if backend == "sqlite" else redis_url
    first, second = (gateway_factory(ollama_url, RESPONSES_STORE_URI=uri) for _ in range(2))
    with fresh_client(first) as client:
        made = client.responses.create(model="llama3.2", input="Remember: blue.")
    with fresh_client(second) as client:
        assert client.responses.retrieve(made.id).output_text == made.output_text
        continued = client.responses.create(
            model="llama3.2", input="What did I say?", previous_response_id=made.id, stream=True
        )
        final = [event for event in continued][-1].response
    assert ollama.last_request("/api/chat").body["messages"][0] == {
        "role": "user",
        "content": "Remember: blue.",
    }
    with fresh_client(first) as client:
        assert client.responses.retrieve(final.id).previous_response_id == made.id


@pytest.fixture(scope="module")
def closed_port():
    """A loopback port bound but not listening: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_a_store_that_does_not_answer_is_a_503_and_answers_still_flow(
    gateway_factory, ollama_url, ollama, closed_port
):
    gateway = gateway_factory(
        ollama_url, RESPONSES_STORE_URI=f"redis://:hunter2@127.0.0.1:{closed_port}/0"
    )
    answer = requests.get(f"{gateway.url}/v1/responses/resp_abc", timeout=30)
    assert answer.status_code == 503
    assert answer.headers["x-should-retry"] == "true"
    assert answer.json()["error"]["code"] == "store_unavailable"
    # A new response is still answered; only storing it failed, which the log says.
    made = requests.post(
        f"{gateway.url}/v1/responses", json={"model": "llama3.2", "input": "hi"}, timeout=30
    )
    assert made.status_code == 200
    assert made.json()["output"][0]["content"][0]["text"] == "Hello! You said: hi"
    continued = requests.post(
        f"{gateway.url}/v1/responses",
        json={"model": "llama3.2", "input": "hi", "previous_response_id": made.json()["id"]},
        timeout=30,
    )
    assert continued.status_code == 503
    reference = {"type": "item_reference", "id": made.json()["output"][0]["id"]}
    referring = requests.post(
        f"{gateway.url}/v1/responses", json={"model": "llama3.2", "input": [reference]}, timeout=30
    )
    assert referring.status_code == 503
    assert referring.json()["error"]["code"] == "store_unavailable"
    log = gateway.log()
    assert f"the response {made.json()['id']} could not be stored" in log
    assert "hunter2" not in log and "hunter2" not in answer.text
