"""ollama-openai: an OpenAI-compatible HTTP API in front of Ollama.

``create_app`` wires the pieces: settings, the Ollama servers, the API blueprint, CORS, the
error handlers that keep every answer an OpenAI envelope, and what a shared deployment needs
(trusted proxies, the access log, metrics, API keys, rate limits, budgets and the usage
ledger), each from its own module.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from typing import Any, cast

from flask import Flask, Response, request
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from . import (
    access_log,
    auth,
    handlers,
    limits,
    metrics,
    proxies,
    quotas,
    responses_routes,
    status,
    usage_routes,
)
from .config import Settings
from .hooks import AfterStep, after_request
from .response_store import open_store
from .routes import (
    CLAMPED_HEADER,
    QUEUE_TIME_HEADER,
    SERVER_HEADER,
    Gateway,
    bp,
    tell_clamped,
    tell_routing,
)
from .routing import Slots
from .servers import OllamaServers
from .translate.options import SamplingDefaults
from .usage import open_usage_store

# Headers clients read that browsers only show to scripts when CORS exposes them.
EXPOSED_HEADERS = [
    "x-request-id",
    "retry-after",
    "x-should-retry",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    CLAMPED_HEADER,
    SERVER_HEADER,
    QUEUE_TIME_HEADER,
]


# Pages served from this machine, on any port: the origins Ollama itself allows by default.
# flask-cors matches from the start only, hence the \Z.
LOCAL_ORIGINS = re.compile(r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?\Z")


class GatewayFlask(Flask):
    """Flask, asking once per function whether it is a coroutine function: Flask asks again
    for every hook and view on every request (inspect's check, five times a request), and the
    gateway's functions never change."""

    # More distinct functions than this are not the app's hooks and views: not kept.
    MOST_KNOWN = 1024

    def __init__(self, import_name: str) -> None:
        super().__init__(import_name)
        self._sync_functions: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        known = self._sync_functions.get(func)
        if known is None:
            known = super().ensure_sync(func)
            if len(self._sync_functions) < self.MOST_KNOWN:
                self._sync_functions[func] = known
        return known


def cors_origins(settings: Settings) -> list[str | re.Pattern[str]]:
    """The origins browsers may call from: CORS_ORIGINS when set; else any origin when keys
    are on (a page still needs a key), and local pages only when the gateway is open, so that
    a web page a user visits cannot drive their models."""
    if settings.cors_origins:
        return list(settings.cors_origins)
    return ["*"] if settings.keys_required else [LOCAL_ORIGINS]


def create_app(settings: Settings | None = None) -> Flask:
    """Build the WSGI app; settings default to the environment, read once here."""
    settings = settings or Settings.from_env()
    _configure_logging(settings.log_level, settings.log_format)
    app = GatewayFlask(__name__)
    # "/v1//models" would be redirected to a Location built from the Host header: an unknown
    # URL is a 404, like any other.
    app.url_map.merge_slashes = False
    # Only the TRUSTED_PROXIES nearest hops may say who the client is; with 0, a client's own
    # X-Forwarded-For is ignored and cannot dodge per-address limits or forge the logs.
    # Flask's documented way to add WSGI middleware, which mypy reads as replacing a method.
    app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
        app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies
    )
    proxies.init_app(app, settings)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.extensions["ollama_openai"] = Gateway(
        settings=settings,
        ollama=OllamaServers(
            settings.ollama_base_urls,
            settings.timeout,
            settings.connect_timeout,
            refresh_interval=settings.model_refresh_interval,
            retry_interval=settings.server_retry_interval,
            max_answer_bytes=settings.max_upstream_bytes,
            routing=settings.routing,
            slots=Slots(
                settings.server_slots,
                settings.slots_by_server,
                settings.models.slots,
                *settings.worker,
            ),
            max_queue=settings.max_queue,
            queue_timeout=settings.queue_timeout,
        ),
        defaults=SamplingDefaults(
            settings.default_temperature,
            settings.default_max_tokens,
            truncate=settings.context_overflow == "truncate",
        ),
        responses=open_store(settings),
        usage=open_usage_store(settings),
        aliases=settings.models.alias_targets,
        models=settings.models,
    )
    app.register_blueprint(bp)
    after_request(app)(tell_clamped)
    after_request(app)(tell_routing)
    app.register_blueprint(responses_routes.bp)
    app.register_blueprint(usage_routes.bp)
    _add_cors(app, settings)
    handlers.init_app(app)
    # Order matters: every request gets its id and clock before a key or a limit can refuse it,
    # keys are checked before limits count them, and a request over its limit takes no slot.
    access_log.init_app(app, settings)
    metrics.init_app(app, settings)
    status.init_app(app, settings)
    keys_on = auth.init_app(app, settings)
    limits.init_app(app, settings)
    quotas.init_app(app, app.extensions["ollama_openai"].usage, keys_on)
    return app


def _add_cors(app: Flask, settings: Settings) -> None:
    """flask-cors for ``/v1/*``, its after-request step run only for requests with an Origin
    (a browser's): for others (an SDK, curl) it adds nothing, yet took 10-30 us a request."""
    steps = app.after_request_funcs.setdefault(None, [])
    before = len(steps)
    # allow_headers defaults to echoing what the preflight asks for: the SDKs send many
    # x-stainless-* headers, and a fixed list would break browser calls when they add one.
    CORS(
        app,
        resources={r"/v1/*": {"origins": cors_origins(settings)}},
        expose_headers=EXPOSED_HEADERS,
        max_age=600,
        always_send=False,
    )
    steps[before:] = [_from_browsers(cast(AfterStep, step)) for step in steps[before:]]


def _from_browsers(step: AfterStep) -> AfterStep:
    def step_for_browsers(response: Response) -> Response:
        if "HTTP_ORIGIN" in request.environ:
            return step(response)
        return response

    return step_for_browsers


def _configure_logging(level: str, log_format: str) -> None:
    logger = logging.getLogger(__name__)
    logger.setLevel(level)
    if not logger.handlers:
        logger.addHandler(logging.StreamHandler(sys.stderr))
        logger.propagate = False
    for handler in logger.handlers:
        handler.setFormatter(access_log.formatter(log_format))
