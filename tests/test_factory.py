"""create_app: builds from explicit settings in tests and from the environment otherwise."""

from flask import Flask

from ollama_openai import create_app
from ollama_openai.config import Settings


def test_create_app_with_test_settings(settings):
    app = create_app(settings)
    gateway = app.extensions["ollama_openai"]
    assert gateway.settings is settings
    assert gateway.ollama.base_url == settings.ollama_base_url


def test_create_app_reads_the_environment(monkeypatch):
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://gpu-box:11434")
    monkeypatch.setenv("DEFAULT_MAX_TOKENS", "")
    gateway = create_app().extensions["ollama_openai"]
    assert gateway.settings == Settings(
        ollama_base_url="http://gpu-box:11434", default_max_tokens=None
    )
    assert gateway.defaults.max_tokens is None


def test_each_hook_and_view_is_checked_for_being_a_coroutine_once(settings, monkeypatch):
    # Flask checks every hook and view on every request (inspect's work); the app asks once
    # per function, and runs the same functions.
    asked = []
    original = Flask.ensure_sync
    monkeypatch.setattr(Flask, "ensure_sync", lambda app, f: asked.append(f) or original(app, f))
    client = create_app(settings).test_client()
    client.get("/v1/nope")
    first = list(asked)
    assert first and len(set(map(id, first))) == len(first)
    for _ in range(3):
        assert client.get("/v1/nope").status_code == 404
    assert asked == first
