"""Traffic of the last minutes for the status page, added up over gunicorn's workers.

Each worker keeps its finished requests of the last ``WINDOW`` seconds and its open streams
(``Recorder``), and a background thread writes them to a file of its own in
PROMETHEUS_MULTIPROC_DIR at most once a second; ``traffic`` adds every worker's file up, as
``/metrics`` does. Without that directory (``flask run``) the one process's own records are
the figures. Nothing here is on a token's path.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Seconds of traffic the page shows, and how many requests a worker keeps for it at most.
WINDOW = 300.0
MAX_SAMPLES = 5000
RECENT_ERRORS = 20
# Seconds between two writes of a worker's file.
FLUSH_INTERVAL = 1.0


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
    # What this worker's routing holds now (slots in use, calls queued), for every worker's
    # page; read at each write.
    live: Callable[[], dict[str, Any]] | None = None
    _dirty: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _live_written: dict[str, Any] | None = None

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
            # The instances' own dicts, not ``asdict`` (which deep-copies each field): this runs
            # every second over up to MAX_SAMPLES samples, and json.dumps only reads them.
            samples = [vars(s) for s in self.samples if s.at >= cutoff]
            open_streams = self.open_streams
        return {
            "pid": os.getpid(),
            "started": self.started,
            "open_streams": open_streams,
            "samples": samples,
            "routing": self.live() if self.live is not None else {},
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
            live = self.live() if self.live is not None else None
            if self._dirty or live != self._live_written:
                self._dirty, self._live_written = False, live
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
                if not alive(snapshot["pid"]):
                    # A worker that died left its requests, but holds no stream, slot or
                    # place in a queue any more.
                    snapshot["open_streams"] = 0
                    snapshot["routing"] = {}
                found.append(snapshot)
        return found


def alive(pid: int) -> bool:
    """Whether a worker process still runs."""
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


def slots_and_queues(workers: list[dict[str, Any]]) -> dict[str, Any]:
    """Every worker's slots in use, by server and model, and calls queued, by model, added up."""
    in_use: dict[str, dict[str, list[int]]] = collections.defaultdict(dict)
    waiting: collections.Counter[str] = collections.Counter()
    for worker in workers:
        routing = worker.get("routing") or {}
        for server, models in (routing.get("running") or {}).items():
            for model, (count, slots) in models.items():
                held = in_use[server].setdefault(model, [0, slots])
                held[0] += count
        waiting.update(routing.get("waiting") or {})
    return {
        "slots": {
            server: [
                {"model": model, "in_use": count, "slots": slots}
                for model, (count, slots) in sorted(models.items())
            ]
            for server, models in in_use.items()
        },
        "queue": [{"model": model, "waiting": count} for model, count in sorted(waiting.items())],
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
