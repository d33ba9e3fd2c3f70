"""create_app: builds from explicit settings in tests and from the environment otherwise."""

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
