"""Prometheus metrics: requests, latency, first token, tokens, open streams, upstream errors;
summed over gunicorn's workers."""

import dataclasses
import json

import requests
import responses
from prometheus_client.parser import text_string_to_metric_families

from ollama_openai import create_app
from ollama_openai.keyring import unnamed_key
from tests.conftest import SECURED_KEYS, eventually

CHAT_URL = "http://ollama.test:11434/api/chat"
OLLAMA_CHAT = {
    "model": "llama3.2",
    "message": {"role": "assistant", "content": "Hello."},
    "done": True,
    "done_reason": "stop",
    "prompt_eval_count": 12,
    "eval_count": 3,
}
CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "Hi"}]}


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape, keyed by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scrape: dict, name: str, **labels) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


@responses.activate
def test_a_chat_request_is_counted_with_its_tokens_and_timings(client):
    responses.post(CHAT_URL, json=OLLAMA_CHAT)
    client.post("/v1/chat/completions", json=CHAT).close()
    scrape = samples(client.get("/metrics").get_data(as_text=True))
    endpoint = "/v1/chat/completions"
    labels = {"endpoint": endpoint, "model": "llama3.2"}
    # Keys are off: the key label is empty.
    assert value(scrape, "ollama_openai_requests_total", **labels, status="200", key="") == 1
    assert value(scrape, "ollama_openai_prompt_tokens_total", model="llama3.2", key="") == 12
    assert value(scrape, "ollama_openai_completion_tokens_total", model="llama3.2", key="") == 3
    assert value(scrape, "ollama_openai_request_duration_seconds_count", endpoint=endpoint) == 1
    assert value(scrape, "ollama_openai_time_to_first_token_seconds_count", **labels) == 1
    assert value(scrape, "ollama_openai_open_streams") == 0


@responses.activate
def test_upstream_failures_are_counted_by_kind(client):
    responses.post(CHAT_URL, status=500, json={"error": "llama runner process has terminated"})
    response = client.post("/v1/chat/completions", json=CHAT)
    response.close()
    assert response.status_code == 502
    scrape = samples(client.get("/metrics").get_data(as_text=True))
    assert value(scrape, "ollama_openai_upstream_errors_total", kind="upstream_error") == 1


def test_ollama_down_while_listing_models_is_an_upstream_error(client):
    with responses.RequestsMock() as mock:
        refused = requests.exceptions.ConnectionError("refused")
        mock.get("http://ollama.test:11434/api/tags", body=refused)
        response = client.get("/v1/models")
        response.close()
    assert response.status_code == 503
    scrape = samples(client.get("/metrics").get_data(as_text=True))
    assert value(scrape, "ollama_openai_upstream_errors_total", kind="ollama_unavailable") == 1


def test_streams_are_open_until_they_end_and_failures_inside_are_counted(client):
    lines = [
        {"model": "llama3.2", "message": {"role": "assistant", "content": "Hi"}, "done": False},
        {"error": "llama runner process has terminated"},
    ]
    with responses.RequestsMock() as mock:
        mock.post(CHAT_URL, body="".join(json.dumps(line) + "\n" for line in lines))
        response = client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        scrape = samples(client.get("/metrics").get_data(as_text=True))
        assert value(scrape, "ollama_openai_open_streams") == 1
        assert b'"error"' in response.get_data()
        response.close()
    scrape = samples(client.get("/metrics").get_data(as_text=True))
    assert value(scrape, "ollama_openai_open_streams") == 0
    assert value(scrape, "ollama_openai_upstream_errors_total", kind="upstream_error") == 1


def test_invented_model_names_do_not_become_labels(client):
    for number in range(3):
        client.post(
            "/v1/chat/completions", json={**CHAT, "temperature": 9, "model": f"m{number}"}
        ).close()
    client.get("/no/such/path").close()
    text = client.get("/metrics").get_data(as_text=True)
    assert 'model="m1"' not in text
    scrape = samples(text)
    labels = {"endpoint": "/v1/chat/completions", "model": "", "status": "400", "key": ""}
    assert value(scrape, "ollama_openai_requests_total", **labels) == 3
    unknown = {"endpoint": "unknown", "model": "", "status": "404", "key": ""}
    assert value(scrape, "ollama_openai_requests_total", **unknown) == 1


def test_requests_and_failures_are_counted_by_ollama_server(client):
    with responses.RequestsMock() as mock:
        mock.post(CHAT_URL, json=OLLAMA_CHAT)
        client.post("/v1/chat/completions", json=CHAT).close()
        mock.replace(responses.POST, CHAT_URL, body=requests.ConnectionError("refused"))
        client.post("/v1/chat/completions", json=CHAT).close()
    scrape = samples(client.get("/metrics").get_data(as_text=True))
    server = "http://ollama.test:11434"
    assert value(scrape, "ollama_openai_server_requests_total", server=server, status="200") == 1
    assert value(scrape, "ollama_openai_server_requests_total", server=server, status="503") == 1
    errors = value(
        scrape, "ollama_openai_server_errors_total", server=server, kind="ollama_unavailable"
    )
    assert errors == 1


def test_metrics_can_be_turned_off(settings):
    client = create_app(dataclasses.replace(settings, metrics_enabled=False)).test_client()
    response = client.get("/metrics")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "unknown_url"


# --- End-to-end: two gunicorn workers, one sum. ---


def test_metrics_add_up_every_gunicorn_worker(secured_server, ollama):
    headers = {"x-api-key": SECURED_KEYS["metrics"]}
    url = secured_server.url

    def scrape() -> dict:
        return samples(requests.get(f"{url}/metrics", headers=headers, timeout=10).text)

    def count() -> float:
        # A key without a name is labelled with its fingerprint, never the key.
        key = unnamed_key(SECURED_KEYS["metrics"]).name
        labels = {"endpoint": "/v1/models", "model": "", "status": "200", "key": key}
        return value(scrape(), "ollama_openai_requests_total", **labels)

    def open_streams() -> float | None:
        return scrape().get(("ollama_openai_open_streams", ()))

    before = count()
    # A new connection per request lets the kernel hand them to either worker.
    for _ in range(12):
        response = requests.get(f"{url}/v1/models", headers=headers, timeout=10)
        assert response.status_code == 200
    # A request is counted when its answer closes, maybe just after the client has read it.
    assert eventually(count, lambda total: total >= before + 12) == before + 12
    # Streams of earlier tests on this gateway may still be closing.
    assert eventually(open_streams, lambda streams: streams == 0) == 0
    assert requests.get(f"{url}/metrics", timeout=10).status_code == 401


def test_the_secured_gateway_boots_cleanly(secured_server):
    assert requests.get(f"{secured_server.url}/health", timeout=10).status_code == 200
    log = secured_server.log()
    # prometheus-client and redis import ssl: they must do so only after gevent has patched it.
    assert "MonkeyPatchWarning" not in log
    assert "Traceback" not in log


def test_scrapes_get_the_format_they_ask_for(client):
    plain = client.get("/metrics")
    assert plain.headers["Content-Type"].startswith("text/plain")
    openmetrics = client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics.get_data(as_text=True).rstrip().endswith("# EOF")
