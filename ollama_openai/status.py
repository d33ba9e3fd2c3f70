"""The status page: what the people who run a shared gateway want to see, as one page
(``/status``) and the JSON it refreshes from (``/status.json``, the same data for scripts):
the gateway's settings that matter, each Ollama server, and the traffic (``traffic``) of the
last minutes over every worker. A request is recorded once its answer has closed.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, render_template

from .answered import Answered, when_answered
from .config import Settings
from .errors import ApiError
from .model_names import entry_name
from .routes import gateway, json_response
from .routing import loaded_models, public_url
from .traffic import Recorder, Sample, alive, slots_and_queues, traffic
from .usage import StoreUnavailable
from .version import __version__

# Seconds between two probes of the Ollama servers.
PROBE_INTERVAL = 10.0
PAGE_ENDPOINTS = ("status.page", "status.data")


@dataclass
class ServerProbes:
    """The Ollama servers as last probed, at most once a PROBE_INTERVAL, and since when each
    has been up or down (as this worker saw it)."""

    probed_at: float = float("-inf")
    report: list[dict[str, Any]] = field(default_factory=list)
    since: dict[str, tuple[str, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def servers(self) -> list[dict[str, Any]]:
        with self._lock:
            if time.monotonic() - self.probed_at >= PROBE_INTERVAL:
                self._probe()
            return self.report

    def _probe(self) -> None:
        health = gateway().ollama.health()
        states = {state.url: state for state in gateway().ollama.states}
        now = time.time()
        report = []
        for server in health["servers"]:
            status = "up" if server["status"] == "connected" else "down"
            previous = self.since.get(server["url"])
            if previous is None or previous[0] != status:
                self.since[server["url"]] = (status, now)
            state = states.get(server["url"])
            models, loaded = self._models(server["url"]) if status == "up" else (None, None)
            report.append(
                {
                    "url": public_url(server["url"]),
                    "status": status,
                    "since": self.since[server["url"]][1],
                    "version": server.get("version"),
                    # Errors name the URL they failed on, which may hold a password.
                    "reason": (server.get("reason") or "").replace(
                        server["url"], public_url(server["url"])
                    )
                    or None,
                    "models": models,
                    "loaded": loaded,
                    "in_flight": state.in_flight if state else None,
                }
            )
        self.report, self.probed_at = report, time.monotonic()

    @staticmethod
    def _models(url: str) -> tuple[list[str] | None, list[dict[str, Any]] | None]:
        """The server's installed models, and those loaded (``/api/ps``: context, expiry)."""
        client = gateway().ollama.clients[url]
        try:
            installed = sorted(entry_name(e) for e in client.tags().get("models") or [])
        except ApiError:
            return None, None
        try:
            loaded = [asdict(model) for model in loaded_models(client.loaded()).values()]
        except ApiError:
            loaded = None
        return installed, loaded


def keys_today() -> list[dict[str, Any]] | None:
    """Each key's use this UTC day from the usage ledger (None when the ledger does not
    answer): its requests and tokens, all models together; "" is use while keys were off."""
    today = datetime.now(UTC).date().isoformat()
    try:
        rows = gateway().usage.rows(today, today)
    except StoreUnavailable:
        return None
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        totals[row.key].update(
            requests=row.requests,
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
        )
    return [{"key": key, **counts} for key, counts in sorted(totals.items())]


def settings_shown(settings: Settings) -> dict[str, Any]:
    """The settings an operator wants at a glance; never a key, a password or a full URI."""
    return {
        "api_keys": "on" if settings.keys_required else "off",
        "rate_limit": settings.rate_limit or "none",
        "rate_limit_storage": urlsplit(settings.rate_limit_storage_uri).scheme,
        "responses_store": urlsplit(settings.responses_store_uri).scheme,
        # Unset, CORS_ORIGINS means any origin with keys on, this machine's pages with keys off.
        "cors_origins": list(settings.cors_origins)
        or (["*"] if settings.keys_required else ["localhost", "127.0.0.1", "[::1]"]),
        "model_aliases": [alias for alias, _ in settings.model_aliases],
        "max_n": settings.max_n,
        "max_messages": settings.max_messages,
        "timeout_seconds": settings.timeout,
        "default_temperature": settings.default_temperature,
        "default_max_tokens": settings.default_max_tokens,
        "metrics": settings.metrics_enabled,
        "routing": settings.routing,
        "server_slots": settings.server_slots,
        "queue_timeout_seconds": settings.queue_timeout,
        "max_queue": settings.max_queue,
    }


def init_app(app: Flask, settings: Settings) -> None:
    """Serve /status and /status.json, and record every request once its answer has closed."""
    live = app.extensions["ollama_openai"].ollama.routing_snapshot
    recorder = Recorder(os.environ.get("PROMETHEUS_MULTIPROC_DIR"), live=live)
    recorder.start_writing()
    probes = ServerProbes()

    def page() -> str:
        """The status page; with API keys on, it asks for a key before it shows anything."""
        return render_template("status.html", keys=settings.keys_required, version=__version__)

    def data() -> Response:
        """The status as JSON: the gateway, each Ollama server, the traffic of the window."""
        workers = recorder.workers()
        now = time.time()
        started = min(worker["started"] for worker in workers)
        routing = slots_and_queues(workers)
        servers = [
            {**server, "slots": routing["slots"].get(server["url"], [])}
            for server in probes.servers()
        ]
        return json_response(
            {
                "generated_at": now,
                "gateway": {
                    "version": __version__,
                    "started_at": started,
                    "uptime_seconds": round(now - started),
                    "workers": sum(alive(worker["pid"]) for worker in workers),
                    "settings": settings_shown(settings),
                },
                "servers": servers,
                "queue": routing["queue"],
                "traffic": traffic(workers, now),
                "keys": keys_today(),
            }
        )

    app.add_url_rule("/status", "status.page", page, methods=["GET"])
    app.add_url_rule("/status.json", "status.data", data, methods=["GET"])

    @when_answered(app)
    def record_when_closed(answered: Answered, response: Response) -> Callable[[], None] | None:
        if answered.endpoint in PAGE_ENDPOINTS or answered.endpoint == "metrics":
            return None
        if answered.streaming:
            recorder.stream(+1)

        def on_close() -> None:
            if answered.streaming:
                recorder.stream(-1)
            exchange = answered.exchange
            recorder.record(
                Sample(
                    at=time.time(),
                    endpoint=answered.rule,
                    status=answered.status,
                    model=exchange.model if exchange else None,
                    ttft=exchange.time_to_first_token if exchange else None,
                    seconds=time.monotonic() - answered.started,
                    completion_tokens=exchange.completion_tokens if exchange else None,
                    upstream_error=exchange.upstream_error if exchange else None,
                    request_id=answered.request_id,
                    server=public_url(exchange.server) if exchange and exchange.server else None,
                )
            )

        return on_close
