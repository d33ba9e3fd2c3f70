"""Reading one environment variable into its type, or a ConfigError whose one-line message
names the variable and what it must hold.

Each reader takes the environment, the variable's name and its default (unset, and mostly
empty too, gives the default); ``config.Settings.from_env`` calls them. Standard library only:
gunicorn.conf.py loads this module, through config.py, before gevent patches anything.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import SplitResult, urlsplit

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
STORE_SCHEMES = ("sqlite", "redis", "rediss", "memory")
# What an OLLAMA_BASE_URL entry may carry after "#": the server's own slots per model.
SERVER_SLOTS = re.compile(r"slots=(\d+)")
# One limit in the limits library's notation: "60/minute", "1000 per day", "10/5 seconds".
_RATE_LIMIT_ITEM = re.compile(
    r"\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day|month|year)s?", re.IGNORECASE
)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class ConfigError(ValueError):
    """An environment variable holds a value the gateway cannot use; fix it and restart."""


def whole_number(
    name: str, default: int, minimum: int = 1, environ: Mapping[str, str] | None = None
) -> int:
    """A whole-number setting that is not the gateway's own (gunicorn's, read in
    gunicorn.conf.py), checked like the gateway's: unset or empty gives ``default``, a bad
    value raises ConfigError with the one-line message."""
    return positive_int(os.environ if environ is None else environ, name, default, minimum)


def positive_int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    expected = "a positive whole number" if minimum == 1 else f"a whole number ({minimum} or more)"
    return _number(env, name, default, int, lambda value: value >= minimum, expected)


def positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(
        env,
        name,
        default,
        float,
        lambda seconds: 0 < seconds < math.inf,
        "a number of seconds above 0",
    )


def port_number(env: Mapping[str, str], name: str, default: int) -> int:
    return _number(
        env, name, default, int, lambda port: 1 <= port <= 65535, "a port number (1-65535)"
    )


def optional_temperature(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    return _number(
        env,
        name,
        default,
        float,
        lambda value: 0 <= value <= 2,
        "a number between 0 and 2 or empty",
        empty_means_none=True,
    )


def optional_max_tokens(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    return _number(
        env,
        name,
        default,
        int,
        lambda value: value >= 1,
        "a positive whole number or empty",
        empty_means_none=True,
    )


def _number(
    env: Mapping[str, str],
    name: str,
    default: Any,
    parse: Callable[[str], Any],
    valid: Callable[[Any], bool],
    expected: str,
    empty_means_none: bool = False,
) -> Any:
    """A number read from ``name``; unset gives ``default``, and empty gives it too unless
    ``empty_means_none`` (then None: "let the model decide")."""
    raw = env.get(name)
    if raw is None or (not raw.strip() and not empty_means_none):
        return default
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = parse(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {expected}, got {raw!r}") from None
    if not valid(value):
        raise ConfigError(f"{name} must be {expected}, got {raw!r}")
    return value


def flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in _TRUE + _FALSE:
        raise ConfigError(f"{name} must be true or false, got {raw!r}")
    return raw in _TRUE


def choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = env.get(name, "").strip().lower() or default
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def log_level(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip().upper() or default
    if raw not in LOG_LEVELS:
        raise ConfigError(f"{name} must be one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return raw


def origins(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
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


def base_urls(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip() or default
    urls = [_base_url(name, value.strip(), default) for value in raw.split(",") if value.strip()]
    if not urls:
        raise ConfigError(f"{name} must be an http(s) URL such as {default}, got {raw!r}")
    bare = [url.partition("#")[0] for url in urls]
    for url in bare:
        if bare.count(url) > 1:
            raise ConfigError(f"{name} lists {url} twice")
    return ",".join(urls)


def _base_url(name: str, value: str, default: str) -> str:
    value, hash_sign, fragment = value.partition("#")
    # "http://gpu-a:11434 #slots=2": the space before the "#" is not the URL's.
    value = value.rstrip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http(s) URL such as {default}, got {value!r}")
    if parts.query:
        raise ConfigError(f"{name} must not carry a query, got {value!r}")
    if hash_sign and not (
        (match := SERVER_SLOTS.fullmatch(fragment.strip())) and int(match.group(1)) >= 1
    ):
        raise ConfigError(
            f"{name} may end an entry only with #slots=N (N at least 1), got {'#' + fragment!r}"
        )
    return value.rstrip("/") + (f"#{fragment.strip()}" if hash_sign else "")


def api_keys(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    # The files of keys are keyring.py's: read again when they change, not once here.
    keys = [key.strip() for key in env.get(name, "").split(",") if key.strip()]
    return tuple(dict.fromkeys(keys))


def aliases(
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


def rate_limit(env: Mapping[str, str], name: str, default: str = "") -> str:
    raw = env.get(name)
    return rate_limits(name, default if raw is None else raw)


def rate_limits(where: str, raw: str) -> str:
    """Limits in the limits library's notation (``60/minute;1000/day``), normalised; ConfigError
    naming ``where`` (a variable, an entry of a keys file) when one is not."""
    items = [item.strip() for item in re.split(r"[;,]", raw.strip()) if item.strip()]
    for item in items:
        if not _RATE_LIMIT_ITEM.fullmatch(item):
            raise ConfigError(f"{where} must be limits like '60/minute;1000/day', got {item!r}")
    return ";".join(items)


def limits_storage_uri(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip() or default
    if not urlsplit(raw).scheme or "://" not in raw:
        # The value may hold a password: name the variable, not the value.
        raise ConfigError(f"{name} must be a storage URI such as memory:// or redis://host:6379")
    return raw


def store_uri(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip() or default
    parts = urlsplit(raw)
    # The messages say what is wrong without repeating the value: it may hold a password.
    expected = "sqlite:///absolute/path.sqlite3, redis://host:6379/0 or memory://"
    if "://" not in raw or parts.scheme not in STORE_SCHEMES:
        raise ConfigError(f"{name} must be {expected}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{name} must not carry a query or fragment")
    if parts.scheme == "memory" and (parts.netloc or parts.path):
        raise ConfigError(f"{name} must be exactly memory:// for an in-process store")
    if parts.scheme == "sqlite" and (parts.netloc or not parts.path.startswith("/")):
        raise ConfigError(f"{name} must name an absolute path: sqlite:///absolute/path.sqlite3")
    if parts.scheme == "sqlite" and parts.path.endswith("/"):
        raise ConfigError(f"{name} must name a file, not a directory")
    if parts.scheme.startswith("redis"):
        _redis_location(name, parts)
    return raw


def _redis_location(name: str, parts: SplitResult) -> None:
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        raise ConfigError(f"{name} holds a bad port: redis://host:6379/0") from None
    if not parts.hostname:
        raise ConfigError(f"{name} must name the Redis host: redis://host:6379/0")
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise ConfigError(f"{name} must end with a database number: redis://host:6379/0")
