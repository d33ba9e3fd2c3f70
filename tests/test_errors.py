"""Every failure reaches the client as an OpenAI error envelope with the right status."""

import json
from http.client import RemoteDisconnected

import pytest
import requests
import responses
from urllib3.exceptions import ProtocolError

from tests.conftest import FAKE_OLLAMA

CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}


def assert_envelope(response, status, code=None, param=None):
    assert response.status_code == status
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["code"] == code
    assert error["param"] == param
    return error


def test_unknown_path_is_404_envelope(client):
    error = assert_envelope(client.get("/v1/nothing"), 404, "unknown_url")
    assert error["message"] == "Invalid URL (GET /v1/nothing)"


def test_wrong_method_is_405_envelope(client):
    response = client.delete("/v1/chat/completions")
    assert_envelope(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize(
    ("data", "content_type", "code"),
    [
        ("{not json", "application/json", "invalid_json"),
        ("", "application/json", "invalid_json"),
        ("[" * 100000, "application/json", "invalid_json"),
        (b"\xff\xfe\x00garbage", "application/json", "invalid_json"),
        (json.dumps(CHAT), "text/plain", "invalid_content_type"),
        ("model=x", "application/x-www-form-urlencoded", "invalid_content_type"),
        ("[1, 2]", "application/json", "invalid_type"),
        ("null", "application/json", "invalid_type"),
    ],
)
def test_unreadable_bodies_are_400(client, data, content_type, code):
    for path in ("/v1/chat/completions", "/v1/completions"):
        assert_envelope(client.post(path, data=data, content_type=content_type), 400, code)


def test_body_over_the_limit_is_413(client, app):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = client.post("/v1/chat/completions", data="x" * 2000, content_type="application/json")
    assert_envelope(response, 413, "request_too_large")


def test_unexpected_exception_is_500_envelope_without_traceback(client, app, caplog):
    gateway = app.extensions["ollama_openai"]

    def explode(*args, **kwargs):
        raise ZeroDivisionError("secret internals")

    gateway.ollama.tags = explode
    response = client.get("/v1/models")
    error = assert_envelope(response, 500, "internal_error")
    assert "secret internals" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    assert error["type"] == "server_error"
    # Our bug takes the same path on a retry.
    assert response.headers["x-should-retry"] == "false"


@responses.activate
@pytest.mark.parametrize(
    ("status", "body", "expected_status", "code", "retry"),
    [
        (404, {"error": "model 'llama3.2' not found"}, 404, "model_not_found", None),
        (400, {"error": "invalid message format"}, 400, "ollama_bad_request", None),
        (
            503,
            {"error": "server busy, please try again.  maximum pending requests exceeded"},
            503,
            "ollama_busy",
            "true",
        ),
        (
            500,
            {"error": "llama runner process has terminated: exit status 2"},
            502,
            "upstream_error",
            "false",
        ),
        (403, None, 502, "upstream_error", "false"),
    ],
)
def test_ollama_error_statuses_map_to_openai_errors(
    client, status, body, expected_status, code, retry
):
    responses.post(f"{FAKE_OLLAMA}/api/chat", status=status, body=json.dumps(body) if body else "")
    response = client.post("/v1/chat/completions", json=CHAT)
    error = assert_envelope(
        response, expected_status, code, "model" if code == "model_not_found" else None
    )
    if code == "model_not_found":
        assert "ollama pull llama3.2" in error["message"]
    elif body:
        assert body["error"] in error["message"]
    else:
        assert "Host header" in error["message"]
    if code == "ollama_busy":
        assert response.headers["Retry-After"] == "1"
    # A 4xx is never retried by the SDKs: no hint needed.
    assert response.headers.get("x-should-retry") == retry


@responses.activate
@pytest.mark.parametrize(
    ("exception", "status", "code", "retry"),
    [
        # Refused and timed out do not heal within the SDK's retry window.
        (requests.ConnectionError("refused"), 503, "ollama_unavailable", "false"),
        (requests.ConnectTimeout("slow"), 503, "ollama_unavailable", "false"),
        (requests.ReadTimeout("silent"), 504, "upstream_timeout", "false"),
        # Connected, then hung up on before any answer: Ollama crashed or restarted.
        (
            requests.ConnectionError(
                ProtocolError("Connection aborted.", RemoteDisconnected("closed"))
            ),
            503,
            "ollama_unavailable",
            "true",
        ),
    ],
)
def test_transport_failures_map_to_5xx(client, exception, status, code, retry):
    responses.post(f"{FAKE_OLLAMA}/api/chat", body=exception)
    response = client.post("/v1/chat/completions", json=CHAT)
    error = assert_envelope(response, status, code)
    assert response.headers["x-should-retry"] == retry
    if status == 503:
        assert FAKE_OLLAMA in error["message"]


@responses.activate
def test_non_json_answer_from_ollama_is_502(client):
    responses.post(f"{FAKE_OLLAMA}/api/chat", body="<html>proxy error</html>", status=200)
    response = client.post("/v1/chat/completions", json=CHAT)
    assert_envelope(response, 502, "upstream_error")
    assert response.headers["x-should-retry"] == "false"


@responses.activate
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_from_ollama_is_502_and_never_followed(client, status, stream):
    elsewhere = "http://elsewhere.test/steal"
    responses.post(f"{FAKE_OLLAMA}/api/chat", status=status, headers={"Location": elsewhere})
    catch = responses.post(elsewhere, json={"done": True})
    response = client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
    error = assert_envelope(response, 502, "upstream_error")
    assert elsewhere in error["message"]
    assert catch.call_count == 0


@responses.activate
def test_an_answer_orjson_refuses_is_read_as_the_standard_library_reads_it(client):
    # A lone surrogate escape: orjson refuses it, the standard library's parse (the one the
    # gateway used before orjson read Ollama's lines) keeps it, and so does the answer.
    body = '{"message": {"role": "assistant", "content": "a\\ud800b"}, "done": true}'
    responses.post(f"{FAKE_OLLAMA}/api/chat", body=body, status=200)
    response = client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200
    assert response.get_json()["choices"][0]["message"]["content"] == "a\ud800b"


@responses.activate
def test_nan_in_an_answer_from_ollama_is_502(client):
    # Go cannot write NaN: whatever sent it is not Ollama, and clients must never get a bare NaN.
    body = '{"message": {"role": "assistant", "content": "hi"}, "done": true, "eval_count": NaN}'
    responses.post(f"{FAKE_OLLAMA}/api/chat", body=body, status=200)
    response = client.post("/v1/chat/completions", json=CHAT)
    assert_envelope(response, 502, "upstream_error")
    assert "NaN" not in response.get_data(as_text=True)
