"""Fixtures: a clean environment for every test, the Flask app and test client, and the
real servers of the end-to-end tests (the Ollama stand-in, the gateway under gunicorn, the SDK).
"""

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import openai
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

from ollama_openai import create_app
from ollama_openai.config import Settings
from ollama_standin import GatewayProcess, RedisProcess, StandinServer

GATEWAY_VARIABLES = (
    "OLLAMA_BASE_URL",
    "HOST",
    "PORT",
    "TIMEOUT",
    "CONNECT_TIMEOUT",
    "KEEPALIVE_INTERVAL",
    "DEFAULT_TEMPERATURE",
    "DEFAULT_MAX_TOKENS",
    "CORS_ORIGINS",
    "LOG_LEVEL",
    "MAX_REQUEST_BYTES",
    "BODY_TIMEOUT",
    "MAX_UPSTREAM_BYTES",
    "WEB_CONCURRENCY",
    "WORKER_CONNECTIONS",
    "GRACEFUL_TIMEOUT",
    "MAX_MESSAGES",
    "API_KEYS",
    "API_KEYS_FILE",
    "RATE_LIMIT",
    "RATE_LIMIT_STORAGE_URI",
    "TRUSTED_PROXIES",
    "LOG_FORMAT",
    "METRICS_ENABLED",
    "PROMETHEUS_MULTIPROC_DIR",
    "MAX_N",
    "MODEL_ALIASES",
    "MODEL_REFRESH_INTERVAL",
    "SERVER_RETRY_INTERVAL",
    "RESPONSES_STORE_URI",
    "RESPONSES_TTL",
    "RESPONSES_STORE_MAX_MB",
    "MODELS_FILE",
    "CONTEXT_OVERFLOW",
    "TEAM_KEYS_FILE",
    "USAGE_STORE_URI",
    "USAGE_RETENTION_DAYS",
    "AUTH_FAILURE_LIMIT",
    "ROUTING",
    "SERVER_SLOTS",
    "QUEUE_TIMEOUT",
    "MAX_QUEUE",
    "SERVER_HEADER",
    # Not the gateway's own, but RESPONSES_STORE_URI's default is read from it.
    "XDG_STATE_HOME",
    # What gunicorn's master leaves for its workers (keyring.CHECKED_KEYS, config.WORKER_VARIABLE).
    "OLLAMA_OPENAI_CHECKED_KEYS",
    "OLLAMA_OPENAI_WORKER",
)
# The keys of the `secured_server`; each test area uses its own, so rate limits do not mix.
SECURED_KEYS = {
    area: f"sk-test-{area}-0123456789abcdef"
    for area in ("auth", "logs", "metrics", "bad-input", "limits", "responses", "responses-other")
}
SECURED_RATE_LIMIT = "500/minute"
# Unit tests fake Ollama at this address with `responses`; nothing listens there.
FAKE_OLLAMA = "http://ollama.test:11434"
# The gateways' SERVER_SLOTS unless a test says otherwise: the stand-in's default parallelism
# has no bound.
STANDIN_SLOTS = 100_000
Value = TypeVar("Value")


def eventually(
    read: Callable[[], Value], done: Callable[[Value], object] = bool, timeout: float = 10.0
) -> Value:
    """``read()`` again until ``done`` accepts its value or ``timeout`` seconds pass; the last
    value, for the caller to assert on. For what a server writes when an answer closes (metrics,
    access lines, the stand-in's counters): that may come just after the client has the answer."""
    deadline = time.monotonic() + timeout
    while not done(value := read()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


# Every gateway under gunicorn comes from `gateway_factory`, redis-server from `redis_url` and
# Chromium from `browser`: a test that uses one, itself or through another fixture, is
# end-to-end.
E2E_FIXTURES = {"gateway_factory", "redis_url", "browser"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Mark end-to-end tests ``e2e`` before ``-m`` selects by marks."""
    for item in items:
        if E2E_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No test sees the developer's own gateway settings."""
    for name in GATEWAY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def settings():
    # Responses and usage stored by unit tests stay in the test's process, never in the user's
    # state.
    return Settings(
        ollama_base_url=FAKE_OLLAMA,
        timeout=2,
        connect_timeout=1,
        responses_store_uri="memory://",
        usage_store_uri="memory://",
    )


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def gateway_log(caplog):
    """What the gateway's loggers write (they do not propagate to the root logger)."""
    logger = logging.getLogger("ollama_openai")
    caplog.set_level(logging.INFO)
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


# --- End-to-end: the Ollama stand-in and the gateway under gunicorn, over real HTTP. ---


@pytest.fixture(scope="session")
def _standin_server():
    with StandinServer() as server:
        yield server


@pytest.fixture
def ollama(_standin_server):
    """The Ollama stand-in, reset to its defaults (models, no faults, no recorded requests)."""
    _standin_server.standin.reset()
    yield _standin_server.standin
    _standin_server.standin.reset()


@pytest.fixture(scope="session")
def ollama_url(_standin_server):
    return _standin_server.url


@pytest.fixture(scope="session")
def gateway_factory(tmp_path_factory):
    """Start extra gateways with their own environment (stopped at the end of the session).

    GRACEFUL_TIMEOUT is short unless a test sets its own: on SIGTERM a worker waits that long
    for clients that keep a connection open, and nothing is left to finish at the end.
    SERVER_SLOTS is many unless a test sets its own: the stand-in runs any number of requests at
    once unless told otherwise (its num_parallel knob), and the gateway must not queue them."""
    started = []

    def start(ollama_url, **env):
        directory = tmp_path_factory.mktemp("gunicorn")
        # Each gateway stores responses and usage in its own files unless told otherwise, never
        # in the developer's ~/.local/state (session gateways start before clean_environment
        # runs).
        env.setdefault("RESPONSES_STORE_URI", f"sqlite://{directory / 'responses.sqlite3'}")
        env.setdefault("USAGE_STORE_URI", f"sqlite://{directory / 'usage.sqlite3'}")
        env.setdefault("GRACEFUL_TIMEOUT", "1")
        env.setdefault("SERVER_SLOTS", str(STANDIN_SLOTS))
        process = GatewayProcess(ollama_url, directory / "gateway.log", **env)
        started.append(process)
        return process

    yield start
    # All at once: one after the other, their graceful stops added up to a third of the run.
    with ThreadPoolExecutor(max_workers=max(len(started), 1)) as pool:
        list(pool.map(GatewayProcess.stop, started))


@pytest.fixture(scope="session")
def server(gateway_factory, ollama_url):
    """The gateway under gunicorn with gevent workers, in front of the stand-in."""
    return gateway_factory(ollama_url)


@pytest.fixture
def openai_client(server, ollama):
    """The official SDK pointed at the gateway; no retries, so each test sees one attempt."""
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="test-key", max_retries=0) as client:
        yield client


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real redis-server on a free loopback port (``make test`` installs it where missing)."""
    redis = RedisProcess(tmp_path_factory.mktemp("redis"))
    yield redis.url
    redis.stop()


@pytest.fixture(scope="session")
def secured_server(gateway_factory, ollama_url, redis_url):
    """A gateway set up as for a team: keys, a Redis-backed rate limit, two workers, metrics."""
    return gateway_factory(
        ollama_url,
        API_KEYS=",".join(SECURED_KEYS.values()),
        RATE_LIMIT=SECURED_RATE_LIMIT,
        RATE_LIMIT_STORAGE_URI=redis_url,
        WEB_CONCURRENCY="2",
    )


def secured_client(server, area, **options):
    """The official SDK for `secured_server` with the key of one test area, no retries."""
    return openai.OpenAI(
        base_url=f"{server.url}/v1", api_key=SECURED_KEYS[area], max_retries=0, **options
    )


# --- A real browser. ---

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="session")
def _chromium(tmp_path_factory):
    """Headless Chromium (Debian's, installed by `make test`) driven by Selenium; the driver's
    path is given, so nothing is downloaded."""
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        # This machine's network is closed: without these, Chromium keeps trying to call home.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def browser(_chromium):
    """The session's Chromium, left on a blank page after each test: a page left open (the
    status page refreshes itself) would go on calling its gateway, and so the shared Ollama
    stand-in, during the tests that come after."""
    yield _chromium
    _chromium.get("about:blank")
