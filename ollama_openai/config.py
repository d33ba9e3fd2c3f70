"""Settings: the gateway's configuration, read once from the environment.

Every variable is documented in the README with its default. Each is read by one of
``env_values``' readers: a bad value raises ConfigError with a one-line message naming the
variable, so start-up stops early instead of failing on the first request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import env_values
from .env_values import SERVER_SLOTS
from .env_values import ConfigError as ConfigError
from .env_values import whole_number as whole_number
from .models_file import CONTEXT_OVERFLOWS, ModelCatalog, ModelsFileError, read_models_file

LOG_FORMATS = ("text", "json")
# Where stored responses live unless RESPONSES_STORE_URI says otherwise: XDG's per-user state.
_STORE_FILE = Path("ollama-openai") / "responses.sqlite3"
# Where the usage ledger lives unless USAGE_STORE_URI says otherwise, beside it.
_USAGE_FILE = Path("ollama-openai") / "usage.sqlite3"
ROUTINGS = ("warm", "least-in-flight")
# Set by gunicorn.conf.py in each worker: "index/count" of the workers sharing the servers.
WORKER_VARIABLE = "OLLAMA_OPENAI_WORKER"


@dataclass(frozen=True)
class Settings:
    """What the gateway needs to know about its environment; passed in, never re-read."""

    # One Ollama server, or several comma-separated (normalised: no spaces, no trailing "/").
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
    # Empty: any origin when keys are on (a page still needs a key), local pages only when off.
    cors_origins: tuple[str, ...] = ()
    log_level: str = "INFO"
    # Room for about a million tokens of text; images travel inline as base64 and need more.
    max_request_bytes: int = 4 * 1024 * 1024
    # Seconds a client has to send a whole request body (a slow upload holds a connection).
    body_timeout: float = 30.0
    # Largest line of an Ollama stream, and largest whole Ollama answer, the gateway reads.
    max_upstream_bytes: int = 64 * 1024 * 1024
    # Most messages per chat request; the default is OpenAI's own limit.
    max_messages: int = 2048
    # API_KEYS: keys without a name or a policy. Empty, with no keys file: the gateway is open.
    # Never shown in a repr or a log.
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    # Limits per key (per client address when keys are off); empty: no limit.
    rate_limit: str = ""
    # May hold a Redis password, hence hidden from repr too.
    rate_limit_storage_uri: str = field(default="memory://", repr=False)
    # Reverse proxies in front whose X-Forwarded-For/-Proto are believed; 0 believes nobody.
    trusted_proxies: int = 0
    log_format: str = "text"
    metrics_enabled: bool = True
    # Most upstream generations one request may start (n, times the prompts of a completion).
    max_n: int = 8
    # OpenAI-style names clients may use for Ollama models: (alias, Ollama model) pairs.
    model_aliases: tuple[tuple[str, str], ...] = ()
    # With several servers: seconds between two reads of each server's /api/tags.
    model_refresh_interval: float = 30.0
    # With several servers: seconds a server that failed to connect or answer is skipped.
    server_retry_interval: float = 10.0
    # Where /v1/responses keeps responses (SQLite file, Redis, or memory:// per process). A
    # Redis URI may hold a password, hence hidden from repr.
    responses_store_uri: str = field(default_factory=lambda: default_store_uri({}), repr=False)
    # Seconds a stored response is kept; OpenAI keeps them 30 days.
    responses_ttl: int = 30 * 24 * 3600
    # Size bound of the store (MiB of stored JSON); over it, the oldest responses go first.
    responses_store_max_mb: int = 1024
    # A prompt longer than the model's context window: "error" (400 context_length_exceeded, as
    # OpenAI answers) or "truncate" (Ollama drops the oldest messages, as it does by default).
    context_overflow: str = "error"
    # The models file (MODELS_FILE): per-model and per-alias settings and the option policy, with
    # MODEL_ALIASES' aliases; read here once, never again.
    models: ModelCatalog = field(default_factory=ModelCatalog)
    # Files of keys (paths; keyring.py reads them, at start and again when they change): a list
    # of keys without policy, and the TOML file of named keys with their models and limits.
    api_keys_file: str = ""
    team_keys_file: str = ""
    # Where the usage ledger (and the count of each key's requests in flight) is kept: SQLite
    # file, Redis, or memory:// per process. May hold a Redis password, hence hidden from repr.
    usage_store_uri: str = field(
        default_factory=lambda: default_store_uri({}, _USAGE_FILE), repr=False
    )
    # Days of usage kept in the ledger.
    usage_retention_days: int = 400
    # Wrong keys one client address may present (the limits notation); empty: no bound.
    auth_failure_limit: str = "20/minute"
    # "warm": loaded models, slots, the queue, conversations back to their server;
    # "least-in-flight": the fewest calls in flight, no queue (Ollama's own).
    routing: str = "warm"
    # Calls each server runs at once per model (Ollama's OLLAMA_NUM_PARALLEL, default 1);
    # OLLAMA_BASE_URL's "#slots=N" and the models file's "slots" override it.
    server_slots: int = 1
    # Seconds a call may wait in the gateway's queue for a slot, and calls per model that may
    # wait (per worker) before the next is refused; Ollama's own queue holds 512.
    queue_timeout: float = 120.0
    max_queue: int = 512
    # Whether answers name the Ollama server that answered (x-ollama-server).
    server_header: bool = True
    # This worker's index and the count of workers (gunicorn.conf.py says): slots are shared.
    worker: tuple[int, int] = (0, 1)

    @property
    def keys_required(self) -> bool:
        """Whether clients need a key: API_KEYS, API_KEYS_FILE or TEAM_KEYS_FILE is set."""
        return bool(self.api_keys or self.api_keys_file or self.team_keys_file)

    @property
    def ollama_base_urls(self) -> tuple[str, ...]:
        """The Ollama servers, in the order OLLAMA_BASE_URL lists them (without "#slots=N")."""
        return tuple(url.partition("#")[0] for url in self._base_url_entries)

    @property
    def slots_by_server(self) -> dict[str, int]:
        """The servers whose OLLAMA_BASE_URL entry sets its own slots (``#slots=N``)."""
        found = {}
        for entry in self._base_url_entries:
            url, _, fragment = entry.partition("#")
            if match := SERVER_SLOTS.fullmatch(fragment):
                found[url] = int(match.group(1))
        return found

    @property
    def _base_url_entries(self) -> list[str]:
        return [url.strip() for url in self.ollama_base_url.split(",") if url.strip()]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build Settings from environment variables, falling back to the defaults above."""
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            ollama_base_url=env_values.base_urls(env, "OLLAMA_BASE_URL", defaults.ollama_base_url),
            host=env.get("HOST", defaults.host).strip() or defaults.host,
            port=env_values.port_number(env, "PORT", defaults.port),
            timeout=env_values.positive_float(env, "TIMEOUT", defaults.timeout),
            connect_timeout=env_values.positive_float(
                env, "CONNECT_TIMEOUT", defaults.connect_timeout
            ),
            keepalive_interval=env_values.positive_float(
                env, "KEEPALIVE_INTERVAL", defaults.keepalive_interval
            ),
            default_temperature=env_values.optional_temperature(
                env, "DEFAULT_TEMPERATURE", defaults.default_temperature
            ),
            default_max_tokens=env_values.optional_max_tokens(
                env, "DEFAULT_MAX_TOKENS", defaults.default_max_tokens
            ),
            cors_origins=env_values.origins(env, "CORS_ORIGINS", defaults.cors_origins),
            log_level=env_values.log_level(env, "LOG_LEVEL", defaults.log_level),
            max_request_bytes=env_values.positive_int(
                env, "MAX_REQUEST_BYTES", defaults.max_request_bytes
            ),
            body_timeout=env_values.positive_float(env, "BODY_TIMEOUT", defaults.body_timeout),
            max_upstream_bytes=env_values.positive_int(
                env, "MAX_UPSTREAM_BYTES", defaults.max_upstream_bytes
            ),
            max_messages=env_values.positive_int(env, "MAX_MESSAGES", defaults.max_messages),
            api_keys=env_values.api_keys(env, "API_KEYS"),
            rate_limit=env_values.rate_limit(env, "RATE_LIMIT"),
            rate_limit_storage_uri=env_values.limits_storage_uri(
                env, "RATE_LIMIT_STORAGE_URI", defaults.rate_limit_storage_uri
            ),
            trusted_proxies=env_values.positive_int(
                env, "TRUSTED_PROXIES", defaults.trusted_proxies, 0
            ),
            log_format=env_values.choice(env, "LOG_FORMAT", LOG_FORMATS, defaults.log_format),
            metrics_enabled=env_values.flag(env, "METRICS_ENABLED", defaults.metrics_enabled),
            max_n=env_values.positive_int(env, "MAX_N", defaults.max_n),
            model_aliases=env_values.aliases(env, "MODEL_ALIASES", defaults.model_aliases),
            model_refresh_interval=env_values.positive_float(
                env, "MODEL_REFRESH_INTERVAL", defaults.model_refresh_interval
            ),
            server_retry_interval=env_values.positive_float(
                env, "SERVER_RETRY_INTERVAL", defaults.server_retry_interval
            ),
            responses_store_uri=env_values.store_uri(
                env, "RESPONSES_STORE_URI", default_store_uri(env)
            ),
            responses_ttl=env_values.positive_int(env, "RESPONSES_TTL", defaults.responses_ttl),
            responses_store_max_mb=env_values.positive_int(
                env, "RESPONSES_STORE_MAX_MB", defaults.responses_store_max_mb
            ),
            context_overflow=env_values.choice(
                env, "CONTEXT_OVERFLOW", CONTEXT_OVERFLOWS, defaults.context_overflow
            ),
            models=_models_file(env, "MODELS_FILE", "MODEL_ALIASES"),
            api_keys_file=env.get("API_KEYS_FILE", "").strip(),
            team_keys_file=env.get("TEAM_KEYS_FILE", "").strip(),
            usage_store_uri=env_values.store_uri(
                env, "USAGE_STORE_URI", default_store_uri(env, _USAGE_FILE, "USAGE_STORE_URI")
            ),
            usage_retention_days=env_values.positive_int(
                env, "USAGE_RETENTION_DAYS", defaults.usage_retention_days
            ),
            auth_failure_limit=env_values.rate_limit(
                env, "AUTH_FAILURE_LIMIT", defaults.auth_failure_limit
            ),
            routing=env_values.choice(env, "ROUTING", ROUTINGS, defaults.routing),
            server_slots=env_values.positive_int(env, "SERVER_SLOTS", defaults.server_slots),
            queue_timeout=env_values.positive_float(env, "QUEUE_TIMEOUT", defaults.queue_timeout),
            max_queue=env_values.positive_int(env, "MAX_QUEUE", defaults.max_queue, 0),
            server_header=env_values.flag(env, "SERVER_HEADER", defaults.server_header),
            worker=_worker(env.get(WORKER_VARIABLE, "")),
        )


def default_store_uri(
    env: Mapping[str, str], file: Path = _STORE_FILE, name: str = "RESPONSES_STORE_URI"
) -> str:
    """The SQLite file under ``$XDG_STATE_HOME`` (``~/.local/state`` when unset or relative)
    that ``name`` names by default."""
    state_home = env.get("XDG_STATE_HOME", "").strip()
    if not state_home or not Path(state_home).is_absolute():
        # The XDG spec: a relative value is invalid and must be ignored.
        try:
            state_home = str(Path.home() / ".local" / "state")
        except RuntimeError:
            raise ConfigError(
                f"{name} is unset and there is no home directory for its default: "
                f"set {name} (or XDG_STATE_HOME)"
            ) from None
    return f"sqlite://{Path(state_home) / file}"


def _worker(raw: str) -> tuple[int, int]:
    """``index/count`` as gunicorn.conf.py writes it; (0, 1) when unset or not that."""
    index, slash, count = raw.partition("/")
    if slash and index.isdigit() and count.isdigit() and 0 <= int(index) < int(count):
        return int(index), int(count)
    return 0, 1


def _models_file(env: Mapping[str, str], name: str, aliases_name: str) -> ModelCatalog:
    path = env.get(name, "").strip()
    try:
        return read_models_file(path, env_values.aliases(env, aliases_name, ()))
    except ModelsFileError as error:
        raise ConfigError(f"{name} {path}: {error}") from None
