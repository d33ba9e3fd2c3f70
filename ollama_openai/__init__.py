"""ollama-openai: an OpenAI-compatible HTTP API in front of Ollama.

``create_app`` wires the pieces: settings, the Ollama client, the API blueprint, CORS and the
error handlers that keep every answer an OpenAI envelope.
"""

from __future__ import annotations

import logging
import sys

from flask import Flask
from flask_cors import CORS

from .config import Settings
from .errors import register_error_handlers
from .ollama import OllamaClient
from .routes import Gateway, bp
from .translate import SamplingDefaults

# Headers clients read that browsers only show to scripts when CORS exposes them.
EXPOSED_HEADERS = [
    "x-request-id",
    "retry-after",
    "x-should-retry",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
]


def create_app(settings: Settings | None = None) -> Flask:
    """Build the WSGI app; settings default to the environment, read once here."""
    settings = settings or Settings.from_env()
    _configure_logging(settings.log_level)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.extensions["ollama_openai"] = Gateway(
        settings=settings,
        ollama=OllamaClient(settings.ollama_base_url, settings.timeout, settings.connect_timeout),
        defaults=SamplingDefaults(settings.default_temperature, settings.default_max_tokens),
        aliases=dict(settings.model_aliases),
    )
    app.register_blueprint(bp)
    # allow_headers defaults to echoing what the preflight asks for: the SDKs send many
    # x-stainless-* headers, and a fixed list would break browser calls when they add one.
    CORS(
        app,
        resources={r"/v1/*": {"origins": list(settings.cors_origins)}},
        expose_headers=EXPOSED_HEADERS,
        max_age=600,
    )
    register_error_handlers(app)
    return app


def _configure_logging(level: str) -> None:
    logger = logging.getLogger(__name__)
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
