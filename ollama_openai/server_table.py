"""ServerTable: what a worker knows of each Ollama server, and the reads that keep it fresh.

With several servers each worker keeps its own table, and nothing is shared between workers:
- which models each server lists: its ``/api/tags``, read at first use, in the background
  every MODEL_REFRESH_INTERVAL, and at once when a call names a model no server lists; with
  them, which models it has loaded (``/api/ps``), also read for ``tags()`` with one server;
- which servers are down: one that refused a connection or timed out before its first byte
  is skipped for SERVER_RETRY_INTERVAL, then read again in the background; one that answered
  503 busy (Ollama's queue is full) is skipped for BUSY_BACKOFF seconds.
The calls in flight on each server are noted in the same rows by ``servers``, under the same
lock; the rules that read the rows are in ``routing``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .concurrent_calls import concurrently
from .errors import ApiError
from .model_names import canonical_model_name
from .ollama import OllamaClient
from .routing import LoadedModel, ServerState, loaded_models, merge_tags, model_names

log = logging.getLogger(__name__)

# Seconds a server that answered 503 busy (its queue is full) is skipped; Ollama's own hint.
BUSY_BACKOFF = 1.0


class ServerTable:
    """One row (``ServerState``) per server, in OLLAMA_BASE_URL's order, and its client.

    ``rows`` are read and written under ``lock``. ``on_loaded`` is told a server's URL and how
    many models it has loaded, each time its /api/ps is read; ``on_read`` is told when servers
    were read again, after which calls waiting for a slot may go.
    """

    def __init__(
        self,
        clients: Mapping[str, OllamaClient],
        refresh_interval: float,
        retry_interval: float,
        clock: Callable[[], float],
        on_loaded: Callable[[str, int], None],
        on_read: Callable[[], None],
    ) -> None:
        self.clients = clients
        self.refresh_interval = refresh_interval
        self.retry_interval = retry_interval
        self.rows = [ServerState(url) for url in clients]
        # One server needs no table: it gets every call, and Ollama answers 404 itself.
        self.several = len(self.rows) > 1
        self.lock = threading.Lock()
        self._clock = clock
        self._on_loaded = on_loaded
        self._on_read = on_read
        self._refresh_lock = threading.Lock()
        self._refreshed_all_at = float("-inf")
        self._start_lock = threading.Lock()
        self._refresher: threading.Thread | None = None
        # Servers whose /api/ps is to be read again soon (after a cold load).
        self._loaded_reads: set[str] = set()

    def snapshot(self) -> list[ServerState]:
        """A copy of the rows, for tests and /health."""
        with self.lock:
            return [
                ServerState(**{**vars(state), "running": dict(state.running)})
                for state in self.rows
            ]

    def tags(self) -> dict[str, Any]:
        """The models of every server that answers, each listed once; fails if none answers.

        Servers marked down are left out (a dead one would hold the answer up for
        CONNECT_TIMEOUT), unless all are.
        """
        now = self._clock()
        targets = [s for s in self.rows if s.is_up(now)] or self.rows
        answers: list[dict[str, Any]] = []
        failures: list[ApiError] = []
        for result in concurrently(self._read_tags, targets):
            if isinstance(result, ApiError):
                failures.append(result)
            else:
                answers.append(result)
        if not answers:
            raise failures[0]
        return merge_tags(answers)

    def loaded_on(self, model: str) -> list[tuple[str, LoadedModel]]:
        """The servers ``model`` is loaded on (URL and what /api/ps said), as last read."""
        wanted = canonical_model_name(model)
        with self.lock:
            found = [(s.url, (s.loaded or {}).get(wanted)) for s in self.rows]
        return [(url, loaded) for url, loaded in found if loaded is not None]

    # Marks a failed call leaves.

    def mark_busy(self, state: ServerState) -> None:
        """Ollama's queue is full there: skip it for BUSY_BACKOFF seconds."""
        log.warning("Ollama at %s is busy; skipped for %g s", state.url, BUSY_BACKOFF)
        with self.lock:
            state.busy_until = self._clock() + BUSY_BACKOFF

    def forget(self, state: ServerState, model: str) -> None:
        """``model`` is gone from ``state``'s server until its next /api/tags says otherwise."""
        with self.lock:
            if state.models is not None:
                state.models = state.models - {model}

    def mark_down(self, url: str, error: ApiError) -> None:
        """The server at ``url`` failed to connect or answer: skip it for its retry interval."""
        with self.lock:
            state = next(s for s in self.rows if s.url == url)
            if not state.down_until:
                log.warning(
                    "Ollama at %s is down (%s); skipped for %g s",
                    url,
                    error.code,
                    self.retry_interval,
                )
            state.down_until = self._clock() + self.retry_interval
            state.reason = error.message

    # Learning the models.

    def refresh(self, asked_at: float | None = None, due_only: bool = False) -> None:
        """Read every server's models (``due_only``: those whose interval or back-off ended).

        With ``asked_at`` (a miss), it is skipped if a whole refresh ended after that time:
        calls that miss while one runs wait for it and share it, so a burst of requests for
        a model nobody has costs one read per server, not one per request.
        """
        with self._refresh_lock:
            if asked_at is not None and self._refreshed_all_at > asked_at:
                return
            now = self._clock()
            with self.lock:
                due = [
                    s
                    for s in self.rows
                    if not due_only or s.refresh_due(now, self.refresh_interval)
                ]
            if due:
                concurrently(self._read_tags, due)
            if not due_only:
                self._refreshed_all_at = self._clock()
        if due:
            # A server back, a model loaded or listed: calls waiting may go now.
            self._on_read()

    def start_refreshing(self) -> None:
        """Read the lists once, then keep them fresh in a background thread (a greenlet under
        gevent); started at first use, so in each worker, never in gunicorn's master."""
        if self._refresher is not None or not self.several:
            return
        # Calls arriving meanwhile wait: with no lists yet, any server would look right.
        with self._start_lock:
            if self._refresher is not None:
                return
            self.refresh()
            self._refresher = threading.Thread(
                target=self._refresh_forever, name="ollama-servers-refresh", daemon=True
            )
            self._refresher.start()

    def read_loaded(self, state: ServerState) -> None:
        """One server's /api/ps, noted in ``state`` (read with its models, so as often); a
        failure leaves it unknown rather than marking the server down."""
        try:
            loaded: dict[str, LoadedModel] | None = loaded_models(self.clients[state.url].loaded())
        except ApiError:
            loaded = None
        with self.lock:
            state.loaded = loaded
            if loaded is not None:
                # What it has loaded is known again: what was sent since is in there, or not.
                state.sent = frozenset()
        if loaded is not None:
            self._on_loaded(state.url, len(loaded))

    def read_loaded_soon(self, state: ServerState) -> None:
        """Read ``state``'s /api/ps again in the background, once at a time per server: a
        model it just loaded may have evicted another."""
        with self.lock:
            if state.url in self._loaded_reads or not self.several:
                return
            self._loaded_reads.add(state.url)
        threading.Thread(
            target=self._read_loaded_again, args=(state,), name="ollama-ps", daemon=True
        ).start()

    def _read_loaded_again(self, state: ServerState) -> None:
        with self.lock:
            self._loaded_reads.discard(state.url)
        self.read_loaded(state)
        self._on_read()

    def _read_tags(self, state: ServerState) -> dict[str, Any] | ApiError:
        """One server's /api/tags, noted in the table; its failure is returned, not raised."""
        try:
            answer = self.clients[state.url].tags()
        except ApiError as error:
            if self.several:
                self.mark_down(state.url, error)
            return error
        if self.several:
            with self.lock:
                if state.down_until:
                    log.warning("Ollama at %s is back", state.url)
                state.models = model_names(answer)
                state.down_until, state.reason = 0.0, None
                state.refreshed_at = self._clock()
        self.read_loaded(state)
        return answer

    def _refresh_forever(self) -> None:
        # Half the shorter interval: a server is read again at most that late.
        tick = min(self.refresh_interval, self.retry_interval) / 2
        while True:
            time.sleep(tick)
            try:
                self.refresh(due_only=True)
            except Exception:
                log.exception("refreshing the Ollama servers' models failed")
