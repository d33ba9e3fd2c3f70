"""Fixtures: the Flask app and test client, and a clean environment for every test."""

import pytest

from ollama_openai import create_app
from ollama_openai.config import Settings

GATEWAY_VARIABLES = (
    "OLLAMA_BASE_URL",
    "HOST",
    "PORT",
    "TIMEOUT",
    "CONNECT_TIMEOUT",
    "DEFAULT_TEMPERATURE",
    "DEFAULT_MAX_TOKENS",
    "CORS_ORIGINS",
    "LOG_LEVEL",
    "MAX_REQUEST_BYTES",
    "WEB_CONCURRENCY",
    "WORKER_CONNECTIONS",
    "GRACEFUL_TIMEOUT",
)
# Unit tests fake Ollama at this address with `responses`; nothing listens there.
FAKE_OLLAMA = "http://ollama.test:11434"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No test sees the developer's own gateway settings."""
    for name in GATEWAY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def settings():
    return Settings(ollama_base_url=FAKE_OLLAMA, timeout=2, connect_timeout=1)


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()
