"""CORS: browsers may call the API from allowed origins, preflight included."""

import dataclasses

import pytest

from ollama_openai import create_app
from ollama_openai.config import Settings

SDK_HEADERS = "authorization, content-type, x-stainless-lang, x-stainless-retry-count"


def preflight(client, origin):
    return client.options(
        "/v1/chat/completions",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": SDK_HEADERS,
        },
    )


def test_preflight_allows_a_local_page_by_default(client):
    response = preflight(client, "http://localhost:5173")
    assert response.status_code == 200
    # flask-cors names the origin back rather than "*", which browsers accept as well.
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    for header in SDK_HEADERS.split(", "):
        assert header in allowed


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:5173",
        "https://localhost",
        "http://127.0.0.1:8080",
        "http://[::1]:3000",
    ],
)
def test_an_open_gateway_allows_local_pages_only_by_default(client, origin):
    assert preflight(client, origin).headers.get("Access-Control-Allow-Origin") == origin


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://localhost.evil.example",
        "http://localhost:5173.evil.example",
        "http://127.0.0.1.evil.example",
        "null",
    ],
)
def test_an_open_gateway_refuses_other_pages_by_default(client, origin):
    # Any page a user visits could otherwise drive their models (Ollama allows local pages).
    response = preflight(client, origin)
    assert "Access-Control-Allow-Origin" not in response.headers
    answer = client.get("/v1/nothing", headers={"Origin": origin})
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_with_keys_any_origin_may_call_by_default(settings):
    keyed = create_app(dataclasses.replace(settings, api_keys=("sk-cors-test",)))
    response = preflight(keyed.test_client(), "https://app.example")
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"


@pytest.mark.parametrize("keys", [(), ("sk-cors-test",)])
def test_cors_origins_overrides_both_defaults(keys):
    settings = Settings(cors_origins=("https://app.example",), api_keys=keys)
    client = create_app(settings).test_client()
    assert preflight(client, "https://app.example").headers["Access-Control-Allow-Origin"]
    assert "Access-Control-Allow-Origin" not in preflight(client, "http://localhost:5173").headers
    star = create_app(Settings(cors_origins=("*",))).test_client()
    allowed = preflight(star, "https://any.example").headers["Access-Control-Allow-Origin"]
    assert allowed == "https://any.example"


@pytest.mark.parametrize(
    ("origin", "allowed"), [("https://app.example", True), ("https://evil.example", False)]
)
def test_origin_allowlist(origin, allowed):
    settings = Settings(cors_origins=("https://app.example", "https://other.example"))
    response = preflight(create_app(settings).test_client(), origin)
    assert (response.headers.get("Access-Control-Allow-Origin") == origin) is allowed


def test_error_answers_carry_cors_headers_and_expose_request_headers(client):
    response = client.get("/v1/nothing", headers={"Origin": "http://localhost:5173"})
    assert response.status_code == 404
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert "x-request-id" in response.headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize("keys", [(), ("sk-cors-test",)])
def test_a_caller_that_is_no_browser_gets_no_cors_headers(settings, keys):
    # No Origin: an SDK or curl, for which CORS means nothing (browsers always send one).
    app = create_app(dataclasses.replace(settings, api_keys=keys))
    headers = {"Authorization": "Bearer sk-cors-test"} if keys else {}
    response = app.test_client().get("/v1/nothing", headers=headers)
    assert response.status_code == 404
    assert not [name for name, _ in response.headers if name.startswith("Access-Control")]
    browser = app.test_client().get(
        "/v1/nothing", headers={**headers, "Origin": "http://localhost:5173"}
    )
    assert browser.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
