"""API keys: who may call the gateway when ``API_KEYS``, ``API_KEYS_FILE`` or ``TEAM_KEYS_FILE``
is set (``keyring`` reads them, and reads the files again when they change).

A key arrives as ``Authorization: Bearer <key>``, ``x-api-key: <key>`` or ``api-key: <key>``
and is compared with every configured key in constant time. A missing or wrong key gets one
and the same 401, so a caller learns nothing about which part was wrong; an address that
presents more wrong keys than ``AUTH_FAILURE_LIMIT`` gets 429s until its window ends, whatever
key it sends. Only ``/health`` and CORS preflights stay open: every other path, ``/v1/*``,
``/metrics`` and unknown ones (so odd spellings such as ``//v1/models`` cannot slip past),
needs a key, and ``/metrics`` an admin key. The accepted key is known afterwards as
``current_key()``: its name (safe to log) and its policy; ``api_key_id`` is its fingerprint.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time

from flask import Flask, g, request

from .config import Settings
from .errors import ApiError, permission_denied, rate_limited
from .hooks import before_request
from .keyring import ApiKey, KeyRing, KeyWatch, checked_by_master
from .rate_counter import RateCounter, parsed_limits

log = logging.getLogger(__name__)

# Endpoints anyone may call: load balancers and uptime checks probe /health without a key;
# the status page holds no data (its script sends a key for /status.json).
OPEN_ENDPOINTS = frozenset({"openai.health", "status.page"})
# Endpoints only admin keys (and keys without a policy) may call.
ADMIN_ENDPOINTS = frozenset({"metrics", "status.data"})


def init_app(app: Flask, settings: Settings) -> bool:
    """Require a key on every path but /health when keys are set; warn when a network is open.
    A keys file that cannot be used raises ConfigError: start-up stops. True when keys are on:
    without them, ``current_key()`` is None for every request."""
    keys = KeyWatch(settings, checked=checked_by_master())
    if not keys.current():
        if not _is_loopback(settings.host):
            log.warning(
                "API_KEYS is not set: anyone who can reach %s:%s can use the models, and so "
                "can web pages from %s in their visitors' browsers (CORS_ORIGINS). "
                "Set API_KEYS, API_KEYS_FILE or TEAM_KEYS_FILE, or bind HOST=127.0.0.1.",
                settings.host,
                settings.port,
                _browser_origins(settings.cors_origins),
            )
        return False
    wrong_keys = WrongKeys(settings)

    @before_request(app)
    def require_api_key() -> None:
        if request.method == "OPTIONS":
            return
        presented = _presented_key()
        open_endpoint = request.endpoint in OPEN_ENDPOINTS
        if not presented:
            if open_endpoint:
                return
            raise invalid_api_key()
        address = request.remote_addr or ""
        # Before the comparison: an address over its bound learns nothing, even of a right key.
        try:
            wrong_keys.check(address)
        except ApiError:
            if open_endpoint:
                return
            raise
        ring = keys.current()
        key = ring.find(presented)
        if key is None:
            # A wrong key counts on /health too, which would otherwise tell a right one apart.
            wrong_keys.count(address)
            if open_endpoint:
                # /health and the status page answer without a key, with less to tell.
                return
            raise invalid_api_key()
        g.api_key, g.keyring = key, ring
        if request.endpoint in ADMIN_ENDPOINTS and not key.admin:
            raise permission_denied(
                f"The key '{key.name}' may not read {request.path}: it needs an admin key."
            )

    return True


def current_key() -> ApiKey | None:
    """The key this request was accepted with, if keys are on."""
    key: ApiKey | None = g.get("api_key")
    return key


def may_use(requested: str, target: str) -> bool:
    """Whether this request's key may use a model (``keyring.ApiKey.may_use``); with keys off,
    every model."""
    key = current_key()
    return key is None or key.may_use(requested, target)


def keys_in_force() -> KeyRing:
    """Every key this request's key was accepted among (empty when keys are off)."""
    ring: KeyRing = g.get("keyring", KeyRing())
    return ring


def api_key_id() -> str | None:
    """The fingerprint of the key this request was accepted with, if keys are on."""
    key = current_key()
    return None if key is None else key.fingerprint


def key_name() -> str | None:
    """The name of this request's key (its fingerprint for a key without one), for logs,
    metrics and the usage ledger; never the key."""
    key = current_key()
    return None if key is None else key.name


def invalid_api_key() -> ApiError:
    """The 401 OpenAI clients raise ``AuthenticationError`` for; the same for every cause."""
    return ApiError(
        401,
        "Invalid or missing API key. Send it as 'Authorization: Bearer <key>' "
        "or 'x-api-key: <key>'; ask the gateway's operator for one.",
        "invalid_request_error",
        None,
        "invalid_api_key",
    )


class WrongKeys:
    """Wrong keys presented per client address, counted against ``AUTH_FAILURE_LIMIT`` where
    the rate limits are counted (``RATE_LIMIT_STORAGE_URI``; in memory while it fails)."""

    SCOPE = "wrong-api-keys"

    def __init__(self, settings: Settings) -> None:
        limit = settings.auth_failure_limit
        self._items = parsed_limits(limit) if limit else ()
        self._counter = RateCounter(settings.rate_limit_storage_uri)

    def check(self, address: str) -> None:
        """A 429 when ``address`` is over its bound of wrong keys."""
        for item in self._items:
            if not self._counter.test(item, self.SCOPE, address):
                reset_at = self._counter.window(item, self.SCOPE, address).reset_time
                wait = max(1, math.ceil(reset_at - time.time()))
                raise rate_limited(
                    f"Too many wrong API keys from this address; try again in {wait}s.", wait
                )

    def count(self, address: str) -> None:
        for item in self._items:
            self._counter.hit(item, self.SCOPE, address)


def _presented_key() -> bytes:
    authorization = request.headers.get("Authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        value = credentials.strip()
    else:
        value = request.headers.get("x-api-key") or request.headers.get("api-key") or ""
    # WSGI hands headers over as latin-1 text: encoding back gives the bytes the client sent,
    # and bytes let compare_digest take any character.
    try:
        return value.strip().encode("latin-1")
    except UnicodeEncodeError:
        return value.strip().encode("utf-8")


def _browser_origins(origins: tuple[str, ...]) -> str:
    if "*" in origins:
        return "any origin"
    return ", ".join(origins) or "this machine (localhost, 127.0.0.1, [::1])"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
