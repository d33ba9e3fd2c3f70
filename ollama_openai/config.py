"""Settings: the gateway's configuration, read once from the environment.

Every variable is documented in the README with its default. A bad value raises
ConfigError with a one-line message naming the variable, so start-up stops early
instead of failing on the first request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """An environment variable holds a value the gateway cannot use; fix it and restart."""


@dataclass(frozen=True)
class Settings:
    """What the gateway needs to know about its environment; passed in, never re-read."""

    ollama_base_url: str = "http://localhost:11434"
    host: str = "0.0.0.0"
    port: int = 8000
    # Longest silence allowed from Ollama between two bytes (seconds), not a whole-answer limit.
    timeout: float = 60.0
    connect_timeout: float = 5.0
    # Seconds of upstream silence after which a stream gets an SSE comment, so proxies and
    # browsers keep the connection while a model loads.
    keepalive_interval: float = 15.0
    # Applied only when a request does not set the field; None sends nothing and lets the
    # model's own Modelfile default apply.
    default_temperature: float | None = 0.7
    default_max_tokens: int | None = 1000
    cors_origins: tuple[str, ...] = ("*",)
    log_level: str = "INFO"
    # Images travel inline as base64, so bodies can be large.
    max_request_bytes: int = 20 * 1024 * 1024
    # Most upstream generations one request may start (n, times the prompts of a completion).
    max_n: int = 8
    # OpenAI-style names clients may use for Ollama models: (alias, Ollama model) pairs.
    model_aliases: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build Settings from environment variables, falling back to the defaults above."""
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            ollama_base_url=_base_url(env, "OLLAMA_BASE_URL", defaults.ollama_base_url),
            host=env.get("HOST", defaults.host).strip() or defaults.host,
            port=_port(env, "PORT", defaults.port),
            timeout=_positive_float(env, "TIMEOUT", defaults.timeout),
            connect_timeout=_positive_float(env, "CONNECT_TIMEOUT", defaults.connect_timeout),
            keepalive_interval=_positive_float(
                env, "KEEPALIVE_INTERVAL", defaults.keepalive_interval
            ),
            default_temperature=_optional_temperature(
                env, "DEFAULT_TEMPERATURE", defaults.default_temperature
            ),
            default_max_tokens=_optional_max_tokens(
                env, "DEFAULT_MAX_TOKENS", defaults.default_max_tokens
            ),
            cors_origins=_origins(env, "CORS_ORIGINS", defaults.cors_origins),
            log_level=_log_level(env, "LOG_LEVEL", defaults.log_level),
            max_request_bytes=_positive_int(env, "MAX_REQUEST_BYTES", defaults.max_request_bytes),
            max_n=_positive_int(env, "MAX_N", defaults.max_n),
            model_aliases=_aliases(env, "MODEL_ALIASES", defaults.model_aliases),
        )


def _base_url(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http(s) URL such as {default}, got {value!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{name} must not carry a query or fragment, got {value!r}")
    return value.rstrip("/")


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a port number (1-65535), got {raw!r}") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name} must be a port number (1-65535), got {raw!r}")
    return port


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 < value < float("inf"):
        raise ConfigError(f"{name} must be a positive number of seconds, got {raw!r}")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a positive whole number, got {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be a positive whole number, got {raw!r}")
    return value


def _optional_temperature(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    if name not in env:
        return default
    raw = env[name].strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"{name} must be a number between 0 and 2 or empty, got {raw!r}"
        ) from None
    if not 0 <= value <= 2:
        raise ConfigError(f"{name} must be a number between 0 and 2 or empty, got {raw!r}")
    return value


def _optional_max_tokens(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    if name not in env:
        return default
    raw = env[name].strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a positive whole number or empty, got {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be a positive whole number or empty, got {raw!r}")
    return value


def _origins(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    origins = tuple(origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip())
    for origin in origins:
        if origin != "*" and not urlsplit(origin).scheme:
            raise ConfigError(
                f"{name} must be '*' or comma-separated origins like https://app.example.com,"
                f" got {origin!r}"
            )
    return origins


def _log_level(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip().upper() or default
    if raw not in LOG_LEVELS:
        raise ConfigError(f"{name} must be one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return raw


def _aliases(
    env: Mapping[str, str], name: str, default: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    pairs: dict[str, str] = {}
    for item in raw.split(","):
        alias, equals, model = (part.strip() for part in item.partition("="))
        if not item.strip():
            continue
        if not equals or not alias or not model:
            raise ConfigError(
                f"{name} must be comma-separated alias=model pairs such as "
                f"gpt-4o=llama3.2:latest, got {item.strip()!r}"
            )
        if alias in pairs:
            raise ConfigError(f"{name} names the alias {alias!r} twice")
        pairs[alias] = model
    return tuple(pairs.items())
