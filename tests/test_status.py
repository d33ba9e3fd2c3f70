"""The status figures: traffic over every worker's window, percentiles, what the page may show
of the settings and the servers (never a key or a password), the version in one place."""

import tomllib
from pathlib import Path

from ollama_openai.config import Settings
from ollama_openai.status import public_url, settings_shown
from ollama_openai.traffic import WINDOW, traffic
from ollama_openai.version import __version__

NOW = 10_000.0


def sample(at, status=200, model="llama3.2", ttft=0.1, seconds=1.1, tokens=50, error=None):
    return {
        "at": at,
        "endpoint": "/v1/chat/completions",
        "status": status,
        "model": model,
        "ttft": ttft,
        "seconds": seconds,
        "completion_tokens": tokens,
        "upstream_error": error,
        "request_id": f"req_{at}",
        "server": "http://a:11434",
    }


def worker(samples, open_streams=0, started=NOW - 3600):
    return {"pid": 1, "started": started, "open_streams": open_streams, "samples": samples}


def test_traffic_adds_up_the_workers_within_the_window():
    first = worker([sample(NOW - 10), sample(NOW - WINDOW - 1)], open_streams=2)
    second = worker(
        [
            sample(NOW - 20, ttft=0.3, seconds=2.3, tokens=100),
            sample(NOW - 5, status=502, error="upstream_error"),
        ],
        open_streams=1,
    )
    figures = traffic([first, second], NOW)
    assert figures["requests"] == 3 and figures["open_streams"] == 3
    assert figures["requests_per_minute"] == [
        {"endpoint": "/v1/chat/completions", "status": 200, "per_minute": 0.4},
        {"endpoint": "/v1/chat/completions", "status": 502, "per_minute": 0.2},
    ]
    [model] = figures["models"]
    assert model["requests"] == 2
    assert model["ttft_ms"] == {"p50": 200.0, "p95": 290.0}
    assert model["tokens_per_second"] == {"p50": 50.0, "p95": 50.0}
    assert [e["request_id"] for e in figures["recent_errors"]] == [f"req_{NOW - 5}"]


def test_a_young_gateway_counts_per_minute_over_its_uptime():
    figures = traffic([worker([sample(NOW - 1)] * 3, started=NOW - 90)], NOW)
    assert figures["requests_per_minute"][0]["per_minute"] == 2.0


def test_the_page_shows_no_secret():
    settings = Settings(
        api_keys=("sk-very-secret",),
        rate_limit_storage_uri="redis://:hunter2@cache:6379/0",
        responses_store_uri="redis://:hunter3@cache:6379/1",
    )
    shown = repr(settings_shown(settings))
    assert "sk-very-secret" not in shown and "hunter" not in shown and "cache" not in shown
    assert settings_shown(settings)["api_keys"] == "on"
    assert public_url("http://user:pw@gpu-1:11434/") == "http://gpu-1:11434/"
    assert public_url("https://[::1]:8443") == "https://[::1]:8443"


def test_the_version_is_said_once():
    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == __version__
