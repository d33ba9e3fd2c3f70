"""Settings: read once from the environment, with documented defaults and one-line errors."""

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from ollama_openai.config import ConfigError, Settings, whole_number
from ollama_standin import GatewayProcess, StandinServer
from ollama_standin.processes import LAUNCHER

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_when_the_environment_is_empty():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.ollama_base_url == "http://localhost:11434"
    assert (settings.port, settings.timeout, settings.connect_timeout) == (8000, 60.0, 5.0)
    assert (settings.default_temperature, settings.default_max_tokens) == (0.7, 1000)
    # Unset: the policy follows the keys (tests/test_cors.py).
    assert settings.cors_origins == ()
    assert settings.log_level == "INFO"
    assert (settings.max_request_bytes, settings.body_timeout) == (4 * 1024 * 1024, 30.0)
    assert settings.max_upstream_bytes == 64 * 1024 * 1024


def test_values_are_read_from_the_environment():
    settings = Settings.from_env(
        {
            "OLLAMA_BASE_URL": "http://gpu-box:11434/",
            "PORT": "9000",
            "TIMEOUT": "12.5",
            "DEFAULT_TEMPERATURE": "",
            "DEFAULT_MAX_TOKENS": "",
            "CORS_ORIGINS": "https://a.example, https://b.example/",
            "LOG_LEVEL": "debug",
        }
    )
    assert settings.ollama_base_url == "http://gpu-box:11434"
    assert (settings.port, settings.timeout) == (9000, 12.5)
    # Empty means "let the model's own default apply": nothing is sent to Ollama.
    assert (settings.default_temperature, settings.default_max_tokens) == (None, None)
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TIMEOUT", "abc"),
        ("TIMEOUT", "-1"),
        ("CONNECT_TIMEOUT", "0"),
        ("PORT", "http"),
        ("PORT", "70000"),
        ("OLLAMA_BASE_URL", "localhost:11434"),
        ("OLLAMA_BASE_URL", "ftp://x"),
        ("DEFAULT_TEMPERATURE", "3"),
        ("DEFAULT_MAX_TOKENS", "lots"),
        ("DEFAULT_MAX_TOKENS", "0"),
        ("CORS_ORIGINS", "example.com"),
        ("LOG_LEVEL", "LOUD"),
        ("MAX_REQUEST_BYTES", "1e9"),
        ("MAX_UPSTREAM_BYTES", "64MiB"),
        ("BODY_TIMEOUT", "0"),
        ("BODY_TIMEOUT", "soon"),
        ("MAX_MESSAGES", "0"),
        ("RATE_LIMIT", "lots"),
        ("RATE_LIMIT", "60/minute;10/fortnight"),
        ("RATE_LIMIT_STORAGE_URI", "localhost:6379"),
        ("TRUSTED_PROXIES", "-1"),
        ("TRUSTED_PROXIES", "two"),
        ("LOG_FORMAT", "xml"),
        ("METRICS_ENABLED", "maybe"),
        ("MAX_N", "0"),
        ("MAX_N", "many"),
        ("MODEL_ALIASES", "gpt-4o"),
        ("MODEL_ALIASES", "gpt-4o=,x=y"),
        ("MODEL_ALIASES", "=llama3.2"),
        ("MODEL_ALIASES", "gpt-4o=a,gpt-4o=b"),
        ("OLLAMA_BASE_URL", "http://a:11434,gpu-b:11434"),
        ("OLLAMA_BASE_URL", "http://a:11434,http://a:11434/"),
        ("OLLAMA_BASE_URL", " , "),
        ("MODEL_REFRESH_INTERVAL", "0"),
        ("SERVER_RETRY_INTERVAL", "soon"),
    ],
)
def test_a_bad_value_names_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_model_aliases_and_max_n_are_read():
    settings = Settings.from_env(
        {
            "MODEL_ALIASES": " gpt-4o = llama3.2:latest, text-embedding-3-small=nomic-embed-text,",
            "MAX_N": "3",
        }
    )
    assert settings.model_aliases == (
        ("gpt-4o", "llama3.2:latest"),
        ("text-embedding-3-small", "nomic-embed-text"),
    )
    assert settings.max_n == 3
    assert (Settings().model_aliases, Settings().max_n) == ((), 8)


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings().port = 1  # type: ignore[misc]


def start_up(entry, **env):
    """Run an entry point (``wsgi.py``, ``gunicorn.conf.py``) as start-up does, in ``env``."""
    return subprocess.run(
        [sys.executable, "-c", f"import runpy; runpy.run_path({entry!r})"],
        env={**env, "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("entry", ["wsgi.py", "gunicorn.conf.py"])
def test_bad_value_stops_start_up_with_one_line(entry):
    result = start_up(entry, TIMEOUT="abc")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "ollama-openai: TIMEOUT must be a number of seconds above 0, got 'abc'"
    ]


def test_gunicorn_numbers_are_read_like_the_gateways_own():
    assert whole_number("WEB_CONCURRENCY", 4, environ={}) == 4
    assert whole_number("WEB_CONCURRENCY", 4, environ={"WEB_CONCURRENCY": " "}) == 4
    assert whole_number("WEB_CONCURRENCY", 4, environ={"WEB_CONCURRENCY": " 7 "}) == 7
    assert whole_number("GRACEFUL_TIMEOUT", 120, 0, environ={"GRACEFUL_TIMEOUT": "0"}) == 0
    with pytest.raises(ConfigError, match=r"^WORKER_CONNECTIONS must be a positive whole number"):
        whole_number("WORKER_CONNECTIONS", 2000, environ={"WORKER_CONNECTIONS": "1e3"})


GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
PYTHON_M = [sys.executable, "-m", "ollama_openai"]


# Runs gunicorn itself, with no fixture that would mark it.
@pytest.mark.e2e
@pytest.mark.parametrize(
    ("command", "name", "value", "line"),
    [
        (GUNICORN, "WORKER_CONNECTIONS", "lots", "must be a positive whole number, got 'lots'"),
        (GUNICORN, "WEB_CONCURRENCY", "0", "must be a positive whole number, got '0'"),
        (GUNICORN, "GRACEFUL_TIMEOUT", "-1", "must be a whole number (0 or more), got '-1'"),
        # gunicorn reads it when imported: run directly, it stops with a traceback.
        (PYTHON_M, "WEB_CONCURRENCY", "abc", "must be a positive whole number, got 'abc'"),
        (PYTHON_M, "TIMEOUT", "abc", "must be a number of seconds above 0, got 'abc'"),
    ],
)
def test_a_bad_gunicorn_setting_stops_gunicorn_with_one_line(command, name, value, line):
    result = subprocess.run(
        command,
        env={name: value, "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"ollama-openai: {name} {line}"]


@pytest.mark.e2e
def test_python_m_ollama_openai_serves_as_gunicorn(tmp_path):
    with StandinServer() as ollama:
        gateway = GatewayProcess(ollama.url, tmp_path / "gateway.log", command=LAUNCHER)
        try:
            assert requests.get(f"{gateway.url}/health", timeout=10).status_code == 200
            assert "Using worker: gevent" in gateway.log()
        finally:
            assert gateway.stop() == 0


def test_deployment_settings_are_read_from_the_environment():
    settings = Settings.from_env(
        {
            "API_KEYS": " sk-one, sk-two ,,",
            "RATE_LIMIT": "60/minute; 1000 per day",
            "RATE_LIMIT_STORAGE_URI": "redis://:secret@redis:6379/0",
            "TRUSTED_PROXIES": "1",
            "MAX_MESSAGES": "100",
            "LOG_FORMAT": "JSON",
            "METRICS_ENABLED": "false",
        }
    )
    assert settings.api_keys == ("sk-one", "sk-two")
    assert settings.rate_limit == "60/minute;1000 per day"
    assert settings.rate_limit_storage_uri == "redis://:secret@redis:6379/0"
    assert (settings.trusted_proxies, settings.max_messages) == (1, 100)
    assert (settings.log_format, settings.metrics_enabled) == ("json", False)


def test_deployment_defaults():
    settings = Settings()
    assert settings.api_keys == ()
    assert (settings.rate_limit, settings.rate_limit_storage_uri) == ("", "memory://")
    assert (settings.trusted_proxies, settings.max_messages) == (0, 2048)
    assert (settings.log_format, settings.metrics_enabled) == ("text", True)


def test_secrets_never_appear_in_a_repr_or_an_error():
    settings = Settings.from_env(
        {"API_KEYS": "sk-very-secret", "RATE_LIMIT_STORAGE_URI": "redis://:hunter2@redis:6379"}
    )
    assert "sk-very-secret" not in repr(settings)
    assert "hunter2" not in repr(settings)
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"RATE_LIMIT_STORAGE_URI": "hunter2"})
    assert "hunter2" not in str(caught.value)


def test_several_ollama_servers_are_read_in_order():
    settings = Settings.from_env(
        {
            "OLLAMA_BASE_URL": " http://gpu-a:11434/ , http://gpu-b:11434,,https://gpu-c",
            "MODEL_REFRESH_INTERVAL": "5",
            "SERVER_RETRY_INTERVAL": "2.5",
        }
    )
    assert settings.ollama_base_urls == (
        "http://gpu-a:11434",
        "http://gpu-b:11434",
        "https://gpu-c",
    )
    assert (settings.model_refresh_interval, settings.server_retry_interval) == (5.0, 2.5)


def test_one_ollama_server_and_the_server_defaults():
    settings = Settings()
    assert settings.ollama_base_urls == ("http://localhost:11434",)
    assert (settings.model_refresh_interval, settings.server_retry_interval) == (30.0, 10.0)


def test_team_settings_are_read_from_the_environment():
    settings = Settings.from_env(
        {
            "API_KEYS_FILE": " /etc/ollama-openai/keys ",
            "TEAM_KEYS_FILE": "/etc/ollama-openai/team.toml",
            "USAGE_STORE_URI": "redis://:hunter2@redis:6379/1",
            "USAGE_RETENTION_DAYS": "90",
            "AUTH_FAILURE_LIMIT": "5/minute; 50/day",
        }
    )
    assert (settings.api_keys_file, settings.team_keys_file) == (
        "/etc/ollama-openai/keys",
        "/etc/ollama-openai/team.toml",
    )
    assert settings.usage_store_uri == "redis://:hunter2@redis:6379/1"
    assert (settings.usage_retention_days, settings.auth_failure_limit) == (90, "5/minute;50/day")
    assert settings.keys_required
    assert "hunter2" not in repr(settings)


def test_team_defaults():
    settings = Settings.from_env({})
    home = Path.home()
    assert settings.usage_store_uri == f"sqlite://{home}/.local/state/ollama-openai/usage.sqlite3"
    assert (settings.team_keys_file, settings.api_keys_file) == ("", "")
    assert (settings.usage_retention_days, settings.auth_failure_limit) == (400, "20/minute")
    assert not settings.keys_required
    # Empty: wrong keys are not bounded.
    assert Settings.from_env({"AUTH_FAILURE_LIMIT": ""}).auth_failure_limit == ""
    usage = Settings.from_env({"XDG_STATE_HOME": "/var/lib/state"}).usage_store_uri
    assert usage == "sqlite:///var/lib/state/ollama-openai/usage.sqlite3"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("USAGE_STORE_URI", "postgres://db/usage"),
        ("USAGE_STORE_URI", "sqlite://relative.sqlite3"),
        ("USAGE_STORE_URI", "redis://:hunter2@redis:port/0"),
        ("USAGE_RETENTION_DAYS", "0"),
        ("USAGE_RETENTION_DAYS", "a year"),
        ("AUTH_FAILURE_LIMIT", "lots"),
    ],
)
def test_a_bad_team_setting_names_the_variable_not_the_password(name, value):
    with pytest.raises(ConfigError, match=f"^{name}") as caught:
        Settings.from_env({name: value})
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("entry", ["wsgi.py", "gunicorn.conf.py"])
def test_a_bad_keys_file_stops_start_up_with_one_line_naming_the_entry(entry, tmp_path):
    (tmp_path / "team.toml").write_text('[keys.alice]\nsha256 = "abc"\n')
    result = start_up(entry, TEAM_KEYS_FILE=str(tmp_path / "team.toml"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "ollama-openai: TEAM_KEYS_FILE: keys.alice.sha256 must be 64 hex digits: "
        "printf %s KEY | sha256sum"
    ]
