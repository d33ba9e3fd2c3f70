"""The status page: what the people who run a shared gateway want to see, as one page
(``/status``) and the JSON it refreshes from (``/status.json``, the same data for scripts).

Each worker keeps its finished requests of the last ``WINDOW`` seconds and its open streams,
and writes them to a file of its own in PROMETHEUS_MULTIPROC_DIR at most once a second;
``/status.json`` adds every worker's file up, as ``/metrics`` does. Without that directory
(``flask run``) the one process's own records are the figures. Nothing here is on a token's
path: a request is recorded once its answer has closed.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import Flask, Response, g, render_template, request

from .config import Settings
from .errors import ApiError
from .exchange import current_exchange, request_started
from .model_names import entry_name
from .routes import gateway, json_response
from .routing import loaded_models
from .version import __version__

# Seconds of traffic the page shows, and how many requests a worker keeps for it at most.
WINDOW = 300.0
MAX_SAMPLES = 5000
RECENT_ERRORS = 20
# Seconds between two writes of a worker's file, and two probes of the Ollama servers.
FLUSH_INTERVAL = 1.0
PROBE_INTERVAL = 10.0
PAGE_ENDPOINTS = ("status.page", "status.data")


@dataclass(frozen=True)
class Sample:
    """One finished request, as the traffic figures need it."""

    at: float
    endpoint: str
    status: int
    model: str | None
    ttft: float | None
    seconds: float
    completion_tokens: int | None
    upstream_error: str | None
    request_id: str | None
    server: str | None


@dataclass
class Recorder:
    """This worker's window of finished requests and its open streams."""

    directory: str | None
    started: float = field(default_factory=time.time)
    samples: collections.deque[Sample] = field(
        default_factory=lambda: collections.deque(maxlen=MAX_SAMPLES)
    )
    open_streams: int = 0
    _dirty: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def path(self) -> Path | None:
        if self.directory is None:
            return None
        return Path(self.directory) / f"status-{os.getpid()}.json"

    def record(self, sample: Sample) -> None:
        with self._lock:
            self.samples.append(sample)
        self._changed()

    def stream(self, change: int) -> None:
        with self._lock:
            self.open_streams += change
        self._changed()

    def snapshot(self) -> dict[str, Any]:
        """What this worker tells the others: its start, open streams and recent requests."""
        cutoff = time.time() - WINDOW
        with self._lock:
            samples = [asdict(s) for s in self.samples if s.at >= cutoff]
            open_streams = self.open_streams
        return {
            "pid": os.getpid(),
            "started": self.started,
            "open_streams": open_streams,
            "samples": samples,
        }

    def _changed(self) -> None:
        self._dirty = True

    def start_writing(self) -> None:
        """Write this worker's file now, then whenever it changed, at most once a
        FLUSH_INTERVAL, from a background thread (a greenlet under gevent): never on a
        request's path. Call it in the worker (create_app runs there), not in the master."""
        if self.directory is None:
            return
        self.write()
        threading.Thread(target=self._write_forever, name="status-writer", daemon=True).start()

    def _write_forever(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL)
            if self._dirty:
                self._dirty = False
                self.write()

    def write(self) -> None:
        """Write this worker's file (atomically: readers see the old one or the new one)."""
        path = self.path
        if path is None:
            return
        temporary = path.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            temporary.write_text(json.dumps(self.snapshot()))
            temporary.replace(path)

    def workers(self) -> list[dict[str, Any]]:
        """Every worker's snapshot: this one's as it is now, the others' as last written."""
        own = self.snapshot()
        if self.directory is None:
            return [own]
        found = [own]
        for path in Path(self.directory).glob("status-*.json"):
            if path == self.path:
                continue
            with contextlib.suppress(OSError, ValueError):
                snapshot = json.loads(path.read_text())
                if not _alive(snapshot["pid"]):
                    # A worker that died left its requests, but holds no stream any more.
                    snapshot["open_streams"] = 0
                found.append(snapshot)
        return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def traffic(workers: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """The traffic figures of the window (or of the uptime, when shorter), over every worker."""
    samples = [s for w in workers for s in w["samples"] if s["at"] >= now - WINDOW]
    uptime = now - min(worker["started"] for worker in workers)
    minutes = max(min(WINDOW, uptime), 60.0) / 60
    by_route: collections.Counter[tuple[str, int]] = collections.Counter(
        (s["endpoint"], s["status"]) for s in samples
    )
    per_model: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for s in samples:
        if s["model"] and s["status"] < 400:
            per_model[s["model"]].append(s)
    errors = sorted((s for s in samples if s["upstream_error"]), key=lambda s: -s["at"])
    return {
        "window_seconds": WINDOW,
        "requests": len(samples),
        "open_streams": sum(w["open_streams"] for w in workers),
        "requests_per_minute": [
            {"endpoint": endpoint, "status": status, "per_minute": round(count / minutes, 2)}
            for (endpoint, status), count in sorted(by_route.items())
        ],
        "models": [_model_figures(model, rows) for model, rows in sorted(per_model.items())],
        "recent_errors": [
            {key: s[key] for key in ("at", "request_id", "endpoint", "model", "server")}
            | {"code": s["upstream_error"]}
            for s in errors[:RECENT_ERRORS]
        ],
    }


def _model_figures(model: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    ttfts = [r["ttft"] * 1000 for r in rows if r["ttft"] is not None]
    speeds = [
        r["completion_tokens"] / (r["seconds"] - r["ttft"])
        for r in rows
        if r["completion_tokens"] and r["ttft"] is not None and r["seconds"] > r["ttft"]
    ]
    return {
        "model": model,
        "requests": len(rows),
        "ttft_ms": _percentiles(ttfts),
        "tokens_per_second": _percentiles(speeds),
    }


def _percentiles(values: list[float]) -> dict[str, float] | None:
    """p50 and p95 of ``values``, or None when there are none."""
    if not values:
        return None
    if len(values) == 1:
        return {"p50": round(values[0], 1), "p95": round(values[0], 1)}
    cuts = statistics.quantiles(values, n=20, method="inclusive")
    return {"p50": round(statistics.median(values), 1), "p95": round(cuts[18], 1)}


def public_url(url: str) -> str:
    """A server's URL without any user or password it may hold."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


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


def settings_shown(settings: Settings) -> dict[str, Any]:
    """The settings an operator wants at a glance; never a key, a password or a full URI."""
    return {
        "api_keys": "on" if settings.api_keys else "off",
        "rate_limit": settings.rate_limit or "none",
        "rate_limit_storage": urlsplit(settings.rate_limit_storage_uri).scheme,
        "responses_store": urlsplit(settings.responses_store_uri).scheme,
        "cors_origins": list(settings.cors_origins),
        "model_aliases": [alias for alias, _ in settings.model_aliases],
        "max_n": settings.max_n,
        "max_messages": settings.max_messages,
        "timeout_seconds": settings.timeout,
        "default_temperature": settings.default_temperature,
        "default_max_tokens": settings.default_max_tokens,
        "metrics": settings.metrics_enabled,
    }


def init_app(app: Flask, settings: Settings) -> None:
    """Serve /status and /status.json, and record every request once its answer has closed."""
    recorder = Recorder(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    recorder.start_writing()
    probes = ServerProbes()

    def page() -> str:
        """The status page; with API keys on, it asks for a key before it shows anything."""
        return render_template("status.html", keys=bool(settings.api_keys), version=__version__)

    def data() -> Response:
        """The status as JSON: the gateway, each Ollama server, the traffic of the window."""
        workers = recorder.workers()
        now = time.time()
        started = min(worker["started"] for worker in workers)
        return json_response(
            {
                "generated_at": now,
                "gateway": {
                    "version": __version__,
                    "started_at": started,
                    "uptime_seconds": round(now - started),
                    "workers": sum(_alive(worker["pid"]) for worker in workers),
                    "settings": settings_shown(settings),
                },
                "servers": probes.servers(),
                "traffic": traffic(workers, now),
            }
        )

    app.add_url_rule("/status", "status.page", page, methods=["GET"])
    app.add_url_rule("/status.json", "status.data", data, methods=["GET"])

    @app.after_request
    def record_when_closed(response: Response) -> Response:
        if request.endpoint in PAGE_ENDPOINTS or request.endpoint == "metrics":
            return response
        started = request_started()
        exchange = current_exchange()
        endpoint = request.url_rule.rule if request.url_rule else "unknown"
        request_id = g.get("request_id")
        status = response.status_code
        streaming = response.is_streamed and response.mimetype == "text/event-stream"
        if streaming:
            recorder.stream(+1)

        def on_close() -> None:
            if streaming:
                recorder.stream(-1)
            recorder.record(
                Sample(
                    at=time.time(),
                    endpoint=endpoint,
                    status=status,
                    model=exchange.model if exchange else None,
                    ttft=exchange.time_to_first_token if exchange else None,
                    seconds=time.monotonic() - started,
                    completion_tokens=exchange.completion_tokens if exchange else None,
                    upstream_error=exchange.upstream_error if exchange else None,
                    request_id=request_id,
                    server=public_url(exchange.server) if exchange and exchange.server else None,
                )
            )

        response.call_on_close(on_close)
        return response
