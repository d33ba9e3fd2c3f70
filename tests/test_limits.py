"""Rate limits per key (per address without keys), the 429 envelope, the headers clients read,
the client address behind trusted proxies, and one budget shared by gateways through Redis."""

import dataclasses
import os
import signal
import time

import openai
import pytest
import requests
import responses

from ollama_openai import create_app
from ollama_openai.limits import go_duration
from ollama_standin import RedisProcess
from tests.conftest import SECURED_RATE_LIMIT, eventually, secured_client

TAGS_URL = "http://ollama.test:11434/api/tags"
RATE_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
)


def limited_client(settings, **changes):
    changes.setdefault("rate_limit", "2/minute")
    return create_app(dataclasses.replace(settings, **changes)).test_client()


@pytest.fixture
def tags():
    with responses.RequestsMock() as mock:
        mock.get(TAGS_URL, json={"models": []})
        yield mock


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (1, "1s"), (59, "59s"), (60, "1m0s"), (360, "6m0s"), (3661, "1h1m1s")],
)
def test_durations_are_written_as_openai_does(seconds, text):
    assert go_duration(seconds) == text


def test_over_the_limit_is_a_429_envelope_with_retry_after(settings, tags):
    client = limited_client(settings)
    first, second, third = (client.get("/v1/models") for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    assert third.get_json() == {
        "error": {
            "message": third.get_json()["error"]["message"],
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert 1 <= int(third.headers["Retry-After"]) <= 60
    assert third.headers["x-ratelimit-remaining-requests"] == "0"
    assert third.headers["x-ratelimit-reset-requests"].endswith("s")


def test_the_tightest_of_several_limits_is_reported(settings, tags):
    client = limited_client(settings, rate_limit="100/minute;3/hour")
    response = client.get("/v1/models")
    assert response.headers["x-ratelimit-limit-requests"] == "3"
    assert response.headers["x-ratelimit-remaining-requests"] == "2"


def test_each_key_has_its_own_budget(settings, tags):
    client = limited_client(settings, api_keys=("sk-a", "sk-b"))
    for _ in range(2):
        assert client.get("/v1/models", headers={"x-api-key": "sk-a"}).status_code == 200
    assert client.get("/v1/models", headers={"x-api-key": "sk-a"}).status_code == 429
    assert client.get("/v1/models", headers={"x-api-key": "sk-b"}).status_code == 200


def test_without_keys_each_client_address_has_its_own_budget(settings, tags):
    client = limited_client(settings)
    first = {"REMOTE_ADDR": "10.0.0.1"}
    for _ in range(2):
        client.get("/v1/models", environ_base=first)
    assert client.get("/v1/models", environ_base=first).status_code == 429
    assert client.get("/v1/models", environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 200


def test_x_forwarded_for_is_ignored_when_no_proxy_is_trusted(settings, tags):
    client = limited_client(settings)
    for spoofed in ("1.1.1.1", "2.2.2.2"):
        client.get("/v1/models", headers={"X-Forwarded-For": spoofed})
    assert client.get("/v1/models", headers={"X-Forwarded-For": "3.3.3.3"}).status_code == 429


def test_x_forwarded_for_names_the_client_behind_a_trusted_proxy(settings, tags):
    client = limited_client(settings, trusted_proxies=1)
    nginx = {"REMOTE_ADDR": "127.0.0.1"}
    for _ in range(2):
        client.get("/v1/models", headers={"X-Forwarded-For": "1.1.1.1"}, environ_base=nginx)
    blocked = client.get("/v1/models", headers={"X-Forwarded-For": "1.1.1.1"}, environ_base=nginx)
    assert blocked.status_code == 429
    other = client.get("/v1/models", headers={"X-Forwarded-For": "2.2.2.2"}, environ_base=nginx)
    assert other.status_code == 200


@pytest.mark.parametrize("path", ["/health", "/metrics"])
def test_probes_are_not_rate_limited(settings, path):
    client = limited_client(settings, rate_limit="1/minute")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get("http://ollama.test:11434/api/version", json={"version": "1"})
        statuses = {client.get(path).status_code for _ in range(3)}
    assert statuses == {200}


def test_preflights_are_not_counted(settings, tags):
    client = limited_client(settings, rate_limit="1/minute")
    for _ in range(3):
        client.options(
            "/v1/models",
            headers={"Origin": "https://a.example", "Access-Control-Request-Method": "GET"},
        )
    assert client.get("/v1/models").status_code == 200


def test_browsers_may_read_the_rate_limit_headers(settings, tags):
    response = limited_client(settings).get(
        "/v1/models", headers={"Origin": "http://localhost:5173"}
    )
    exposed = response.headers["Access-Control-Expose-Headers"].lower()
    for name in (*RATE_HEADERS, "retry-after", "x-request-id"):
        assert name in exposed


def test_no_limit_means_no_rate_headers(client, tags):
    response = client.get("/v1/models")
    assert response.status_code == 200
    assert "x-ratelimit-limit-requests" not in response.headers


# --- End-to-end: the SDK, and two gateway processes sharing one budget in Redis. ---


def test_secured_gateway_sends_rate_headers_to_the_sdk(secured_server, ollama):
    with secured_client(secured_server, "limits") as client:
        raw = client.models.with_raw_response.list()
    assert raw.headers["x-ratelimit-limit-requests"] == SECURED_RATE_LIMIT.split("/")[0]
    assert int(raw.headers["x-ratelimit-remaining-requests"]) < 500


@pytest.fixture(scope="module")
def twin_gateways(gateway_factory, ollama_url, redis_url):
    env = {
        "API_KEYS": "sk-shared-budget",
        "RATE_LIMIT": "4/minute",
        "RATE_LIMIT_STORAGE_URI": redis_url,
    }
    return gateway_factory(ollama_url, **env), gateway_factory(ollama_url, **env)


def test_two_gateways_share_one_budget_through_redis(twin_gateways, ollama):
    clients = [
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-shared-budget", max_retries=0)
        for gateway in twin_gateways
    ]
    for index in range(4):
        clients[index % 2].models.list()
    for client in clients:
        with pytest.raises(openai.RateLimitError) as caught:
            client.models.list()
        assert caught.value.code == "rate_limit_exceeded"
        headers = caught.value.response.headers
        # The SDK reads Retry-After to decide when to try again.
        wait = client._parse_retry_after_header(headers)
        assert wait is not None and 0 < wait <= 60
        assert headers["x-ratelimit-remaining-requests"] == "0"
        client.close()
    assert "sk-shared-budget" not in twin_gateways[0].log() + twin_gateways[1].log()


def test_a_storage_outage_still_serves_and_counts_in_memory(settings, tags):
    # Nothing listens on port 1: the limiter logs the failure and counts in memory instead.
    client = limited_client(settings, rate_limit_storage_uri="redis://127.0.0.1:1/0")
    statuses = [client.get("/v1/models").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_a_redis_that_stops_answering_costs_half_a_second_once_and_is_logged(
    gateway_factory, ollama_url, ollama, tmp_path
):
    redis = RedisProcess(tmp_path)
    try:
        gateway = gateway_factory(
            ollama_url, RATE_LIMIT="100/minute", RATE_LIMIT_STORAGE_URI=redis.url
        )
        assert requests.get(f"{gateway.url}/v1/models", timeout=30).status_code == 200
        os.kill(redis.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            statuses = [
                requests.get(f"{gateway.url}/v1/models", timeout=30).status_code for _ in range(4)
            ]
            took = time.monotonic() - started
        finally:
            os.kill(redis.process.pid, signal.SIGCONT)
        # Without timeouts, 10, 5 and 5 s, with nothing logged.
        assert statuses == [200] * 4
        assert took < 3
        log = eventually(gateway.log, lambda text: "storage unreachable" in text)
        assert "WARNING ollama_openai.rate_counter: Rate limit storage unreachable" in log
    finally:
        redis.stop()


@pytest.mark.parametrize(
    ("peer", "warned"),
    [
        ("93.184.215.14", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("100.101.102.103", False),
        ("::1", False),
    ],
)
def test_a_trusted_proxy_that_is_no_proxy_is_warned_about_once(settings, gateway_log, peer, warned):
    app = create_app(dataclasses.replace(settings, trusted_proxies=1))
    client = app.test_client()
    for forged in ("1.1.1.1", "2.2.2.2"):
        client.get(
            "/v1/nothing", headers={"X-Forwarded-For": forged}, environ_base={"REMOTE_ADDR": peer}
        )
    warnings = [record for record in gateway_log.records if "TRUSTED_PROXIES" in record.message]
    assert len(warnings) == (1 if warned else 0)
    if warned:
        assert peer in warnings[0].message
