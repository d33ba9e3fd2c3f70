"""API keys: /v1/* and /metrics need one when keys are set; /health and preflights stay open."""

import dataclasses
import http.client

import openai
import pytest
import responses

from ollama_openai import create_app
from tests.conftest import SECURED_KEYS, secured_client

KEY = "sk-unit-test-key-42"
OTHER_KEY = "sk-unit-other-key-7"
MODELS_ANSWER = {"models": []}


@pytest.fixture
def keyed_client(settings):
    app = create_app(dataclasses.replace(settings, api_keys=(KEY, OTHER_KEY)))
    return app.test_client()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sk-wrong"},
        {"Authorization": f"Basic {KEY}"},
        {"Authorization": "Bearer"},
        {"x-api-key": "sk-wrong"},
        {"x-api-key": f"{KEY}x"},
        {"Authorization": "Bearer k\u00e9y-\u00ff"},
    ],
    ids=["none", "wrong-bearer", "basic", "empty-bearer", "wrong-x-api-key", "longer", "latin1"],
)
def test_missing_or_wrong_key_is_one_and_the_same_401(keyed_client, headers):
    response = keyed_client.get("/v1/models", headers=headers)
    assert response.status_code == 401
    error = response.get_json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "invalid_api_key",
        None,
    )
    # The same words whatever was wrong: nothing tells a guesser which part to change.
    assert error["message"] == keyed_client.get("/v1/models").get_json()["error"]["message"]
    assert KEY not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {KEY}"},
        {"Authorization": f"bearer {OTHER_KEY}"},
        {"x-api-key": KEY},
        {"api-key": OTHER_KEY},
    ],
    ids=["bearer", "lowercase-scheme", "x-api-key", "api-key"],
)
@responses.activate
def test_a_configured_key_is_accepted(keyed_client, headers):
    responses.get("http://ollama.test:11434/api/tags", json=MODELS_ANSWER)
    assert keyed_client.get("/v1/models", headers=headers).status_code == 200


@responses.activate
def test_health_and_preflight_need_no_key(keyed_client):
    responses.get("http://ollama.test:11434/api/version", json={"version": "0.12.6"})
    assert keyed_client.get("/health").status_code == 200
    preflight = keyed_client.options(
        "/v1/chat/completions",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"


def test_a_browser_can_read_the_401(keyed_client):
    response = keyed_client.post("/v1/chat/completions", headers={"Origin": "https://a.example"})
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == "https://a.example"


def test_metrics_need_a_key_when_keys_are_on(keyed_client):
    assert keyed_client.get("/metrics").status_code == 401
    assert keyed_client.get("/metrics", headers={"x-api-key": KEY}).status_code == 200


@pytest.mark.parametrize(
    "path", ["/v1//models", "/v1/./models", "/v1/models/", "/%761/models", "/nowhere", "/metrics/"]
)
def test_odd_spellings_of_a_path_need_a_key_too(keyed_client, path):
    response = keyed_client.get(path)
    assert response.status_code == 401


def test_keys_are_checked_before_the_body_is_read(keyed_client):
    response = keyed_client.post("/v1/chat/completions", data="not json")
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("host", "keys", "warned"),
    [("0.0.0.0", (), True), ("::", (), True), ("127.0.0.1", (), False), ("0.0.0.0", (KEY,), False)],
)
def test_an_open_gateway_on_a_network_address_warns_at_start(
    settings, gateway_log, host, keys, warned
):
    create_app(dataclasses.replace(settings, host=host, api_keys=keys))
    assert ("API_KEYS is not set" in gateway_log.text) is warned


@pytest.mark.parametrize(
    ("origins", "named"),
    [
        ((), "web pages from this machine (localhost, 127.0.0.1, [::1])"),
        (("*",), "web pages from any origin"),
        (("https://app.example",), "web pages from https://app.example"),
    ],
)
def test_the_open_gateway_warning_names_the_browsers_it_lets_in(
    settings, gateway_log, origins, named
):
    create_app(dataclasses.replace(settings, host="0.0.0.0", cors_origins=origins))
    assert named in gateway_log.text
    assert "CORS_ORIGINS" in gateway_log.text


# --- End-to-end with the official SDK. ---


def test_sdk_raises_authentication_error_for_a_wrong_key(secured_server, ollama):
    with (
        openai.OpenAI(
            base_url=f"{secured_server.url}/v1", api_key="sk-not-a-key", max_retries=0
        ) as client,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        client.models.list()
    assert caught.value.code == "invalid_api_key"
    assert caught.value.status_code == 401
    assert ollama.requests == []


def test_sdk_works_with_a_configured_key(secured_server, ollama):
    with secured_client(secured_server, "auth") as client:
        answer = client.chat.completions.create(
            model="llama3.2", messages=[{"role": "user", "content": "Hi"}]
        )
    assert answer.choices[0].message.content
    assert SECURED_KEYS["auth"] not in secured_server.log()


@pytest.mark.parametrize("path", ["//v1/models", "/v1//models", "//metrics", "/v1/../v1/models"])
def test_raw_paths_cannot_slip_past_the_key_check(secured_server, ollama, path):
    # http.client sends the path byte for byte, as a hostile client would.
    connection = http.client.HTTPConnection("127.0.0.1", secured_server.port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 401, body
    assert ollama.requests == []
