"""The access log: one line per request with what it did, never a key or a message."""

import dataclasses
import json
import logging

import pytest
import requests
import responses

from ollama_openai import create_app
from tests.conftest import SECURED_KEYS, eventually, secured_client

CHAT_URL = "http://ollama.test:11434/api/chat"
SECRET_TEXT = "the launch code is 0000-PURPLE-GIRAFFE"
OLLAMA_CHAT = {
    "model": "llama3.2",
    "created_at": "2025-05-01T10:00:00Z",
    "message": {"role": "assistant", "content": "Hello."},
    "done": True,
    "done_reason": "stop",
    "prompt_eval_count": 12,
    "eval_count": 3,
}


def access_lines(caplog):
    return [r for r in caplog.records if r.name == "ollama_openai.access_log"]


@responses.activate
def test_one_line_per_request_with_what_it_did(client, gateway_log):
    responses.post(CHAT_URL, json=OLLAMA_CHAT)
    response = client.post(
        "/v1/chat/completions",
        json={"model": "llama3.2", "messages": [{"role": "user", "content": SECRET_TEXT}]},
        headers={"X-Request-ID": "req-abc.123"},
    )
    response.close()
    (record,) = access_lines(gateway_log)
    fields = record.access
    assert response.headers["X-Request-ID"] == "req-abc.123"
    assert fields["request_id"] == "req-abc.123"
    assert (fields["method"], fields["path"], fields["status"]) == (
        "POST",
        "/v1/chat/completions",
        200,
    )
    assert (fields["model"], fields["stream"]) == ("llama3.2", False)
    assert (fields["prompt_tokens"], fields["completion_tokens"]) == (12, 3)
    assert fields["client"] == "127.0.0.1"
    assert 0 <= fields["ttft_ms"] <= fields["duration_ms"]
    assert "request_id=req-abc.123" in record.getMessage()
    assert "model=llama3.2" in record.getMessage()
    assert SECRET_TEXT not in gateway_log.text


def test_streamed_requests_are_logged_when_the_stream_ends(client, gateway_log):
    lines = [
        {"model": "llama3.2", "message": {"role": "assistant", "content": "Hi"}, "done": False},
        {**OLLAMA_CHAT, "message": {"role": "assistant", "content": ""}},
    ]
    with responses.RequestsMock() as mock:
        mock.post(CHAT_URL, body="".join(json.dumps(line) + "\n" for line in lines))
        response = client.post(
            "/v1/chat/completions",
            json={
                "model": "llama3.2",
                "stream": True,
                "messages": [{"role": "user", "content": "x"}],
            },
        )
        assert access_lines(gateway_log) == []
        assert b"[DONE]" in response.get_data()
        response.close()
    (record,) = access_lines(gateway_log)
    assert record.access["stream"] is True
    assert record.access["completion_tokens"] == 3
    assert record.access["ttft_ms"] is not None


@pytest.mark.parametrize("given", ["", "bad id with spaces", "x" * 129, "forged\tline", "<script>"])
def test_unusable_request_ids_are_replaced(client, gateway_log, given):
    response = client.get("/nowhere", headers={"X-Request-ID": given} if given else {})
    response.close()
    request_id = response.headers["X-Request-ID"]
    assert request_id.startswith("req_") and len(request_id) == 36
    assert access_lines(gateway_log)[0].access["request_id"] == request_id


def test_unsafe_values_stay_on_one_quoted_line(client, gateway_log):
    client.get("/nowhere/evil%0Aforged=1 x").close()
    (record,) = access_lines(gateway_log)
    message = record.getMessage()
    assert "\n" not in message
    assert 'path="/nowhere/evil\\nforged=1 x"' in message


@pytest.mark.parametrize(("trusted", "logged"), [(0, "10.0.0.9"), (1, "203.0.113.7")])
def test_the_logged_client_is_the_forwarded_one_only_behind_a_trusted_proxy(
    settings, gateway_log, trusted, logged
):
    client = create_app(dataclasses.replace(settings, trusted_proxies=trusted)).test_client()
    client.get(
        "/nowhere",
        headers={"X-Forwarded-For": "203.0.113.7"},
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    ).close()
    (record,) = access_lines(gateway_log)
    assert record.access["client"] == logged


def test_json_log_format(settings, gateway_log):
    app = create_app(dataclasses.replace(settings, log_format="json"))
    app.test_client().get("/nowhere", headers={"X-Request-ID": "json-1"}).close()
    (record,) = access_lines(gateway_log)
    (handler,) = logging.getLogger("ollama_openai").handlers[:1]
    line = json.loads(handler.format(record))
    assert line["request_id"] == "json-1"
    assert (line["status"], line["path"], line["level"]) == (404, "/nowhere", "INFO")
    assert line["logger"] == "ollama_openai.access_log"


# --- End-to-end: the log gunicorn captured holds no key and no message content. ---


def test_gunicorn_log_has_one_line_per_request_and_no_secrets(secured_server, ollama):
    key = SECURED_KEYS["logs"]
    response = requests.post(
        f"{secured_server.url}/v1/chat/completions",
        json={"model": "llama3.2", "messages": [{"role": "user", "content": SECRET_TEXT}]},
        headers={"Authorization": f"Bearer {key}", "X-Request-ID": "e2e-log-check"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "e2e-log-check"
    refused = requests.get(
        f"{secured_server.url}/v1/models",
        headers={"x-api-key": "sk-wrong", "X-Request-ID": "e2e-log-refused"},
        timeout=10,
    )
    assert refused.status_code == 401
    # Access lines are written when an answer closes, maybe just after the client has it; the
    # refused request's line must be there too, or the checks for its key below prove nothing.
    log = eventually(
        secured_server.log,
        lambda text: "request_id=e2e-log-check" in text and "request_id=e2e-log-refused" in text,
    )
    (line,) = [line for line in log.splitlines() if "request_id=e2e-log-check" in line]
    assert "status=200" in line and "model=llama3.2" in line and "prompt_tokens=" in line
    assert key not in log
    assert "sk-wrong" not in log
    assert "Bearer" not in log
    assert SECRET_TEXT not in log
    # gunicorn's own access line would repeat ours.
    assert '"POST /v1/chat/completions HTTP/1.1"' not in log


def test_a_streamed_sdk_call_is_logged_with_its_tokens(secured_server, ollama):
    with secured_client(secured_server, "logs") as client:
        stream = client.chat.completions.create(
            model="llama3.2",
            messages=[{"role": "user", "content": SECRET_TEXT}],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"X-Request-ID": "e2e-stream-check"},
        )
        (usage,) = [chunk.usage for chunk in stream if chunk.usage]
    log = eventually(secured_server.log, lambda text: "request_id=e2e-stream-check" in text)
    (line,) = [x for x in log.splitlines() if "e2e-stream-check" in x]
    assert "stream=true" in line
    assert f"prompt_tokens={usage.prompt_tokens}" in line
    assert f"completion_tokens={usage.completion_tokens}" in line
    assert "ttft_ms=-" not in line
    assert SECRET_TEXT not in secured_server.log()


@pytest.mark.parametrize("stream", [False, True])
def test_the_line_names_the_ollama_server(client, gateway_log, stream):
    with responses.RequestsMock() as mock:
        mock.post(CHAT_URL, body=json.dumps(OLLAMA_CHAT) + "\n")
        response = client.post(
            "/v1/chat/completions",
            json={
                "model": "llama3.2",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": stream,
            },
        )
        response.get_data()
        response.close()
    (record,) = access_lines(gateway_log)
    assert record.access["server"] == "http://ollama.test:11434"
    assert "server=http://ollama.test:11434" in record.getMessage()
