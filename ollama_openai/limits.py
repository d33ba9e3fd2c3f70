"""Rate limits: ``RATE_LIMIT`` requests per API key (per client address when keys are off), or
the key's own ``rate_limit`` from ``TEAM_KEYS_FILE``.

One step before each ``/v1/*`` request counts it against each of its limits (a fixed window per
limit, in ``rate_counter``'s storage), refuses it with a 429 envelope and ``Retry-After`` once a
limit is spent, and adds the headers OpenAI clients read (``x-ratelimit-*-requests``, for the
limit with the least left) to its answer, the 429 included. flask-limiter did this glue until
issue 18: its generic work per request (exemption scopes, the limit text parsed again, a
storage read per header) cost more than the count itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import Flask, Response, g, request
from limits import RateLimitItem, WindowStats

from .auth import api_key_id, current_key
from .config import Settings
from .errors import ApiError, rate_limited
from .hooks import after_request, before_request
from .rate_counter import RateCounter, parsed_limits

LIMITED_PREFIX = "/v1/"
# The scope of the counts in the storage (wrong keys have their own).
SCOPE = "requests"


def init_app(app: Flask, settings: Settings) -> None:
    """Count requests against RATE_LIMIT; call after ``auth.init_app`` so keys are known."""
    if not settings.rate_limit and not settings.team_keys_file:
        return
    counter = RateCounter(settings.rate_limit_storage_uri)

    @before_request(app)
    def count_request() -> None:
        if _not_limited():
            return
        key = current_key()
        # Read per request: a key added to the file later may bring its own limit.
        text = (key.rate_limit if key is not None else "") or settings.rate_limit
        if not text:
            return
        identity = api_key_id() or request.remote_addr or "127.0.0.1"
        g.rate_limit = count = LimitCount.taken(counter, parsed_limits(text), identity)
        if count.spent is not None:
            raise count.too_many()

    @after_request(app)
    def add_rate_limit_headers(response: Response) -> Response:
        count: LimitCount | None = g.get("rate_limit")
        if count is not None:
            # Added, not set: no other step writes them, and set scans every header.
            add = response.headers.add
            for name, value in count.headers().items():
                add(name, value)
        return response


@dataclass(frozen=True)
class LimitCount:
    """One request counted: each limit with its window after the count, and the first limit
    it went past (None: within all)."""

    windows: tuple[tuple[RateLimitItem, WindowStats], ...]
    spent: tuple[RateLimitItem, WindowStats] | None

    @classmethod
    def taken(
        cls, counter: RateCounter, items: tuple[RateLimitItem, ...], identity: str
    ) -> LimitCount:
        windows = []
        for item in items:
            within, stats = counter.hit_window(item, SCOPE, identity)
            window = (item, stats)
            windows.append(window)
            if not within:
                # The longer limits are left uncounted, as the request is not served.
                return cls(tuple(windows), window)
        return cls(tuple(windows), None)

    def headers(self) -> dict[str, str]:
        """``x-ratelimit-*-requests`` of the limit with the least left; the reset as a duration
        (``1s``, ``6m0s``)."""
        item, window = self.spent or min(self.windows, key=lambda pair: pair[1].remaining)
        return {
            "x-ratelimit-limit-requests": str(item.amount),
            "x-ratelimit-remaining-requests": str(max(0, window.remaining)),
            "x-ratelimit-reset-requests": go_duration(_seconds_until(window.reset_time)),
        }

    def too_many(self) -> ApiError:
        assert self.spent is not None
        item, window = self.spent
        retry_after = max(1, _seconds_until(window.reset_time))
        limit = f"{item.amount} per {go_duration(item.get_expiry())}"
        return rate_limited(
            f"Rate limit reached ({limit}). Try again in {retry_after}s.", retry_after
        )


def go_duration(seconds: int) -> str:
    """Seconds as OpenAI writes durations (Go's style): ``1s``, ``6m0s``, ``1h0m0s``."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _seconds_until(epoch: float) -> int:
    return max(0, int(epoch - time.time()))


def _not_limited() -> bool:
    # Preflights carry no key and must never be refused; /health and /metrics are for probes.
    return request.method == "OPTIONS" or not request.path.startswith(LIMITED_PREFIX)
