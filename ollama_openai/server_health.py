"""ServerHealth: the probes of every Ollama server behind ``/health``.

Each server is asked its version (and what it has loaded); the gateway is healthy while one
answers. Probes run one at a time and their report is reused for HEALTH_MAX_AGE seconds, so a
flood of health checks costs Ollama nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .concurrent_calls import concurrently
from .errors import ApiError
from .routing import ServerState
from .server_table import ServerTable

# How long a report is reused, and how long a caller waits for a running probe before the
# last report is answered instead.
HEALTH_MAX_AGE = 1.0
HEALTH_WAIT = 1.0


class ServerHealth:
    """The last report on the servers of ``table``, probed again when it is too old."""

    def __init__(self, table: ServerTable, clock: Callable[[], float]) -> None:
        self._table = table
        self._clock = clock
        self._lock = threading.Lock()
        self._report: dict[str, Any] | None = None
        self._report_until = float("-inf")
        # Set when the running probe ends; None while none runs.
        self._probed: threading.Event | None = None

    def report(self) -> dict[str, Any]:
        """Every server's state, healthy while one answers; models count as last read.

        While a probe runs, callers wait for it up to HEALTH_WAIT s and then get the last
        report (a server that accepts connections and never answers held every call up for
        the probe timeout).
        """
        with self._lock:
            report = self._report
            if report is not None and self._clock() < self._report_until:
                return report
            if self._probed is None:
                self._probed = threading.Event()
                threading.Thread(target=self._probe_all, name="ollama-health", daemon=True).start()
            probed = self._probed
        probed.wait(None if report is None else HEALTH_WAIT)
        with self._lock:
            return self._report or {"status": "unhealthy", "ollama": "disconnected"}

    def _probe_all(self) -> None:
        try:
            report = self._report_now()
            with self._lock:
                self._report, self._report_until = report, self._clock() + HEALTH_MAX_AGE
        finally:
            with self._lock:
                probed, self._probed = self._probed, None
            assert probed is not None
            probed.set()

    def _report_now(self) -> dict[str, Any]:
        """Probe every server now."""
        probes = concurrently(self._probe, self._table.snapshot())
        up = [probe for probe in probes if probe["status"] == "connected"]
        report: dict[str, Any] = {
            "status": "healthy" if up else "unhealthy",
            "ollama": "connected" if up else "disconnected",
        }
        if up:
            report["ollama_version"] = up[0]["version"]
        else:
            report["reason"] = "; ".join(probe["reason"] for probe in probes)
        report["servers"] = probes
        return report

    def _probe(self, state: ServerState) -> dict[str, Any]:
        probe: dict[str, Any] = {"url": state.url}
        try:
            probe["version"] = self._table.clients[state.url].version()
        except ApiError as error:
            probe.update(status="disconnected", reason=error.message)
        else:
            probe["status"] = "connected"
            # What it has loaded now: /health lists it, with one server too (no table then).
            self._table.read_loaded(state)
        if state.models is not None:
            probe["models"] = len(state.models)
        if state.loaded is not None:
            probe["loaded"] = sorted(state.loaded)
        return probe
