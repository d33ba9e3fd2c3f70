"""API keys: who may call the gateway when ``API_KEYS`` or ``API_KEYS_FILE`` is set.

A key arrives as ``Authorization: Bearer <key>``, ``x-api-key: <key>`` or ``api-key: <key>``
and is compared with every configured key in constant time. A missing or wrong key gets one
and the same 401, so a caller learns nothing about which part was wrong. Only ``/health`` and
CORS preflights stay open: every other path, ``/v1/*``, ``/metrics`` and unknown ones (so odd
spellings such as ``//v1/models`` cannot slip past), needs a key. The accepted key is known
afterwards only by its fingerprint (``api_key_id``), which rate limits count by and which is
safe to store or log.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging

from flask import Flask, g, request

from .config import Settings
from .errors import ApiError

log = logging.getLogger(__name__)

# Endpoints anyone may call: load balancers and uptime checks probe /health without a key.
OPEN_ENDPOINTS = frozenset({"openai.health"})


def init_app(app: Flask, settings: Settings) -> None:
    """Require a key on every path but /health when keys are set; warn when a network is open."""
    if not settings.api_keys:
        if not _is_loopback(settings.host):
            log.warning(
                "API_KEYS is not set: anyone who can reach %s:%s can use the models, and so "
                "can web pages from %s in their visitors' browsers (CORS_ORIGINS). "
                "Set API_KEYS or API_KEYS_FILE, or bind HOST=127.0.0.1.",
                settings.host,
                settings.port,
                _browser_origins(settings.cors_origins),
            )
        return
    keys = tuple(key.encode() for key in settings.api_keys)

    @app.before_request
    def require_api_key() -> None:
        if request.method == "OPTIONS":
            return
        presented = _presented_key()
        # Every configured key is compared, so the time taken says nothing about which matched.
        matched = False
        for key in keys:
            matched |= hmac.compare_digest(presented, key)
        if matched:
            g.api_key_id = key_fingerprint(presented)
        elif request.endpoint not in OPEN_ENDPOINTS:
            # /health answers without a key, with less to tell.
            raise invalid_api_key()


def api_key_id() -> str | None:
    """The fingerprint of the key this request was accepted with, if keys are on."""
    return g.get("api_key_id")


def key_fingerprint(key: bytes) -> str:
    """A short, irreversible name for a key, for rate-limit storage and logs."""
    return "key-" + hashlib.sha256(key).hexdigest()[:16]


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
