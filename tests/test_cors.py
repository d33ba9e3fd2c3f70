"""CORS: browsers may call the API from allowed origins, preflight included."""

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


def test_preflight_allows_any_origin_by_default(client):
    response = preflight(client, "http://localhost:5173")
    assert response.status_code == 200
    # flask-cors names the origin back rather than "*", which browsers accept as well.
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    for header in SDK_HEADERS.split(", "):
        assert header in allowed


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
