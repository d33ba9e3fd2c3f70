"""Rate limits: ``RATE_LIMIT`` requests per API key (per client address when keys are off), or
the key's own ``rate_limit`` from ``TEAM_KEYS_FILE``.

flask-limiter counts, in ``RATE_LIMIT_STORAGE_URI``: ``memory://`` is per worker process,
``redis://`` shares one budget between every worker and every gateway instance. This module
turns its 429 into an OpenAI envelope and adds the headers OpenAI clients read
(``x-ratelimit-*-requests``, ``Retry-After``) to every ``/v1/*`` answer.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, request
from flask_limiter import Limiter, RequestLimit
from flask_limiter.errors import RateLimitExceeded
from flask_limiter.util import get_remote_address

from .auth import api_key_id, current_key
from .config import Settings
from .errors import ApiError, rate_limited, render_error
from .hooks import after_request

log = logging.getLogger(__name__)

LIMITED_PREFIX = "/v1/"
# Seconds to connect to a Redis storage and to wait for each of its answers.
STORAGE_TIMEOUTS: dict[str, Any] = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}


def init_app(app: Flask, settings: Settings) -> None:
    """Count requests against RATE_LIMIT; call after ``auth.init_app`` so keys are known."""
    if not settings.rate_limit and not settings.team_keys_file:
        return

    def limit_of_this_request() -> str:
        # Read per request: a key added to the file later may bring its own limit.
        key = current_key()
        return (key.rate_limit if key is not None else "") or settings.rate_limit

    limiter = Limiter(
        _client_identity,
        app=app,
        application_limits=[limit_of_this_request],
        storage_uri=settings.rate_limit_storage_uri,
        strategy="fixed-window",
        # Our own hook writes the headers, in the names and formats OpenAI clients read.
        headers_enabled=False,
        # A storage outage (Redis down) is logged and lets requests through rather than
        # failing every call; memory limits stand in until the storage is back.
        swallow_errors=True,
        in_memory_fallback_enabled=True,
        storage_options=_storage_options(settings.rate_limit_storage_uri),
    )
    # Its warnings (the storage is unreachable, recovered) go where the gateway's go.
    limiter.logger = log
    limiter.request_filter(_not_limited)

    @after_request(app)
    def add_rate_limit_headers(response: Response) -> Response:
        if _not_limited():
            return response
        try:
            current = _tightest(limiter.current_limits)
            if current is not None:
                response.headers.update(rate_limit_headers(current))
        except Exception:
            # The storage failed after the limit check; a missing header is not worth a 500.
            log.warning("rate limit headers skipped: the limit storage did not answer")
        return response

    app.register_error_handler(RateLimitExceeded, lambda exc: render_error(_too_many(limiter)))


def rate_limit_headers(current: RequestLimit) -> dict[str, str]:
    """``x-ratelimit-*-requests`` for one limit, the reset as a duration (``1s``, ``6m0s``)."""
    reset_in = max(0, int(current.reset_at - time.time()))
    return {
        "x-ratelimit-limit-requests": str(current.limit.amount),
        "x-ratelimit-remaining-requests": str(max(0, current.remaining)),
        "x-ratelimit-reset-requests": go_duration(reset_in),
    }


def go_duration(seconds: int) -> str:
    """Seconds as OpenAI writes durations (Go's style): ``1s``, ``6m0s``, ``1h0m0s``."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _too_many(limiter: Limiter) -> ApiError:
    current = _tightest([lim for lim in limiter.current_limits if lim.breached])
    if current is None:
        retry_after, limit = 1, ""
    else:
        retry_after = max(1, int(current.reset_at - time.time()))
        limit = f" ({current.limit.amount} per {go_duration(current.limit.get_expiry())})"
    return rate_limited(f"Rate limit reached{limit}. Try again in {retry_after}s.", retry_after)


def _tightest(limits: list[RequestLimit]) -> RequestLimit | None:
    return min(limits, key=lambda lim: lim.remaining, default=None)


def _storage_options(uri: str) -> dict[str, Any]:
    # A Redis that stops answering (stopped, a network partition) costs a request half a
    # second, not five or ten; then memory stands in, as above.
    return STORAGE_TIMEOUTS if uri.startswith("redis") else {}


def _client_identity() -> str:
    return api_key_id() or get_remote_address()


def _not_limited() -> bool:
    # Preflights carry no key and must never be refused; /health and /metrics are for probes.
    return request.method == "OPTIONS" or not request.path.startswith(LIMITED_PREFIX)
