"""Trusted proxies: a warning when TRUSTED_PROXIES believes a peer that cannot be a proxy.

With TRUSTED_PROXIES set, werkzeug's ``ProxyFix`` (wired in ``create_app``) takes the client's
address from the X-Forwarded-For its proxy adds. A request that comes straight from a public
address has no proxy in front of it, so its X-Forwarded-For is the client's own: it could name
any address, dodge per-address rate limits and forge the logs. The first such request of each
worker is logged; the answer is unchanged.
"""

from __future__ import annotations

import ipaddress
import logging

from flask import Flask, request

from .config import Settings
from .hooks import before_request

log = logging.getLogger(__name__)


def init_app(app: Flask, settings: Settings) -> None:
    """Warn once per worker when a request reaches the gateway from past its proxies."""
    if not settings.trusted_proxies:
        return
    warned: list[str] = []

    @before_request(app)
    def check_peer() -> None:
        if warned:
            return
        original = request.environ.get("werkzeug.proxy_fix.orig") or {}
        peer = original.get("REMOTE_ADDR") or request.remote_addr or ""
        if could_be_a_proxy(peer):
            return
        warned.append(peer)
        log.warning(
            "TRUSTED_PROXIES=%d, yet a request came straight from %s, which is neither a "
            "loopback nor a private address: a client that reaches the gateway past its proxy "
            "can forge its address in X-Forwarded-For. Bind HOST=127.0.0.1 behind the proxy, "
            "or set TRUSTED_PROXIES=0 without one.",
            settings.trusted_proxies,
            peer,
        )


def could_be_a_proxy(peer: str) -> bool:
    """Whether ``peer`` is on this machine or a private network, anything but a public
    address (an unknown peer, such as a Unix socket's, is given the benefit of the doubt)."""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return True
    return not address.is_global
