"""OllamaServers: the Ollama servers behind the gateway, one chosen per call by its model.

It owns one OllamaClient per ``OLLAMA_BASE_URL`` entry and offers the calls the views and the
stream pumps make (``tags``, ``post``, ``post_all``, ``stream``, ``health``), so
they never know how many servers there are. With one server every call goes straight to it.
With several, each worker keeps its own table, and nothing is shared between workers:
- which models each server lists: its ``/api/tags``, read at first use, in the background
  every MODEL_REFRESH_INTERVAL, and at once when a call names a model no server lists; with
  them, which models it has loaded (``/api/ps``), also read for ``tags()`` with one server;
- how many calls each server has in flight from this worker: the fewest wins, ties go
  to the one chosen least recently (round-robin);
- which servers are down: one that refused a connection or timed out before its first byte
  is skipped for SERVER_RETRY_INTERVAL, then read again in the background.
A call that failed that way is retried once on another server that is up and lists the
model. Nothing is retried once a stream has been handed over: its bytes may have reached the
client. An error Ollama answered (400, 500, busy) is never a reason to try elsewhere, except a
404 for the model, which means that server's list was stale: the model is forgotten there and
the call goes to another server that lists it, if any. The rules that choose a server are in
``routing``; this module keeps the table and makes the calls.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from .errors import ApiError, model_not_found
from .model_names import canonical_model_name
from .ollama import DEFAULT_MAX_ANSWER_BYTES, OllamaClient, UpstreamStream
from .pumps import patched_gevent
from .routing import (
    LoadedModel,
    ServerState,
    choose_server,
    loaded_models,
    merge_tags,
    model_names,
)

log = logging.getLogger(__name__)

# /health's probe of every server: how long its report is reused, and how long a caller waits
# for a running probe before the last report is answered instead.
HEALTH_MAX_AGE = 1.0
HEALTH_WAIT = 1.0

# Failures of a server, not of the request: the call never got an answer started.
FAILOVER_CODES = frozenset({"ollama_unavailable", "upstream_timeout"})

_Answer = TypeVar("_Answer", dict[str, Any], UpstreamStream)
_Item = TypeVar("_Item")
_Result = TypeVar("_Result")
# Told the URL of each server a call is sent to (the Exchange records it for logs, metrics).
OnServer = Callable[[str], None] | None


def concurrently(call: Callable[[_Item], _Result], items: Sequence[_Item]) -> list[_Result]:
    """``call`` for every item at once, each in its own greenlet (a thread without gevent);
    results in order, the first failure raised once all have ended. Killed while waiting (the
    client hung up), it kills the calls too, so their connections to Ollama close."""
    if len(items) == 1:
        return [call(items[0])]
    gevent = patched_gevent()
    if gevent is None:
        with ThreadPoolExecutor(max_workers=len(items)) as pool:
            futures = [pool.submit(call, item) for item in items]
        return [future.result() for future in futures]
    calls = [gevent.spawn(_outcome, call, item) for item in items]
    try:
        gevent.joinall(calls)
    except BaseException:
        gevent.killall(calls, block=False)
        raise
    outcomes = [greenlet.value for greenlet in calls]
    for succeeded, value in outcomes:
        if not succeeded:
            raise value
    return [value for _, value in outcomes]


def _outcome(call: Callable[[_Item], _Result], item: _Item) -> tuple[bool, Any]:
    # A failure is returned, not raised: gevent would print the traceback of a greenlet that
    # dies of one.
    try:
        return True, call(item)
    except Exception as error:
        return False, error


class OllamaServers:
    """Calls the Ollama server that has the model; see the module docstring for the rules."""

    def __init__(
        self,
        base_urls: Sequence[str],
        timeout: float,
        connect_timeout: float,
        refresh_interval: float = 30.0,
        retry_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        self.clients = {
            url: OllamaClient(url, timeout, connect_timeout, max_answer_bytes) for url in base_urls
        }
        self.refresh_interval = refresh_interval
        self.retry_interval = retry_interval
        self._clock = clock
        self._states = [ServerState(url) for url in base_urls]
        # One server needs no table: it gets every call, and Ollama answers 404 itself.
        self._routing = len(self._states) > 1
        self._lock = threading.Lock()
        self._turns = itertools.count(1)
        self._refresh_lock = threading.Lock()
        self._refreshed_all_at = float("-inf")
        self._start_lock = threading.Lock()
        self._refresher: threading.Thread | None = None
        self._health_lock = threading.Lock()
        self._health: dict[str, Any] | None = None
        self._health_until = float("-inf")
        # Set when the running probe ends; None while none runs.
        self._probed: threading.Event | None = None

    @property
    def base_url(self) -> str:
        """The servers' URLs as OLLAMA_BASE_URL lists them."""
        return ",".join(self.clients)

    @property
    def states(self) -> list[ServerState]:
        """A snapshot of the table, for tests and /health."""
        with self._lock:
            return [ServerState(**vars(state)) for state in self._states]

    # The calls the views and the pumps make.

    def tags(self) -> dict[str, Any]:
        """The models of every server that answers, each listed once; fails if none answers.

        Servers marked down are left out (a dead one would hold the answer up for
        CONNECT_TIMEOUT), unless all are.
        """
        now = self._clock()
        targets = [s for s in self._states if s.is_up(now)] or self._states
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

    # ``on_server`` is told each server a call goes to; ``prefer`` names the server to choose
    # when it is up and has the model (the one that answered the conversation's last turn).

    def post(
        self,
        path: str,
        payload: dict[str, Any],
        on_server: OnServer = None,
        prefer: str | None = None,
    ) -> dict[str, Any]:
        """``OllamaClient.post`` on the chosen server, failing over once."""
        call = partial(OllamaClient.post, path=path, payload=payload)
        return self._call(payload["model"], call, on_server, prefer)

    def post_all(
        self,
        path: str,
        payloads: Sequence[dict[str, Any]],
        on_server: OnServer = None,
        prefer: str | None = None,
    ) -> list[dict[str, Any]]:
        """Several calls at once (n > 1), each on its own chosen server; answers in order."""
        post = partial(self.post, path, on_server=on_server, prefer=prefer)
        return concurrently(post, payloads)

    def stream(
        self,
        path: str,
        payload: dict[str, Any],
        on_server: OnServer = None,
        prefer: str | None = None,
    ) -> UpstreamStream:
        """``OllamaClient.stream`` on the chosen server, failing over once before it returns."""
        call = partial(OllamaClient.stream, path=path, payload=payload)
        return self._call(payload["model"], call, on_server, prefer)

    def show(self, model: str) -> dict[str, Any]:
        """``/api/show`` of ``model`` on a server listing it: not counted in flight, not failed
        over (callers cache it; what a model can do is the same on every server)."""
        self._start_refreshing()
        with self._lock:
            state = choose_server(self._states, canonical_model_name(model), self._clock())
        return self.clients[(state or self._states[0]).url].show(model)

    def loaded_on(self, model: str) -> list[tuple[str, LoadedModel]]:
        """The servers ``model`` is loaded on (URL and what /api/ps said), as last read."""
        wanted = canonical_model_name(model)
        with self._lock:
            found = [(s.url, (s.loaded or {}).get(wanted)) for s in self._states]
        return [(url, loaded) for url, loaded in found if loaded is not None]

    def health(self) -> dict[str, Any]:
        """Every server's state, healthy while one answers; models count as last read.

        The servers are probed at most once every HEALTH_MAX_AGE s, one probe at a time, so a
        flood of health checks costs Ollama nothing; while a probe runs, callers wait for it up
        to HEALTH_WAIT s and then get the last report (a server that accepts connections and
        never answers held every call up for the probe timeout).
        """
        with self._health_lock:
            report = self._health
            if report is not None and self._clock() < self._health_until:
                return report
            if self._probed is None:
                self._probed = threading.Event()
                threading.Thread(target=self._probe_all, name="ollama-health", daemon=True).start()
            probed = self._probed
        probed.wait(None if report is None else HEALTH_WAIT)
        with self._health_lock:
            return self._health or {"status": "unhealthy", "ollama": "disconnected"}

    def _probe_all(self) -> None:
        try:
            report = self._health_report()
            with self._health_lock:
                self._health, self._health_until = report, self._clock() + HEALTH_MAX_AGE
        finally:
            with self._health_lock:
                probed, self._probed = self._probed, None
            assert probed is not None
            probed.set()

    def _health_report(self) -> dict[str, Any]:
        """Probe every server now."""
        probes = concurrently(self._probe, self.states)
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

    # Choosing, counting, failing over.

    def _call(
        self,
        model: str,
        call: Callable[[OllamaClient], _Answer],
        on_server: OnServer,
        prefer: str | None = None,
    ) -> _Answer:
        state = self._choose(model, prefer)
        try:
            return self._call_on(state, call, on_server)
        except ApiError as error:
            if not self._routing:
                raise
            if error.code == "model_not_found":
                # Its list was stale (the model was removed there): another may still have it.
                self._forget(state, canonical_model_name(model))
            elif error.code in FAILOVER_CODES:
                self._mark_down(state.url, error)
            else:
                raise
            other = self._choose_other(model, exclude=(state.url,))
            if other is None:
                raise
            log.warning("%s failed (%s); retrying on %s", state.url, error.code, other.url)
            return self._call_on(other, call, on_server)

    def _choose(self, model: str, prefer: str | None = None) -> ServerState:
        """The server for ``model``; a miss reads the lists again, then raises a 404."""
        wanted = canonical_model_name(model)
        self._start_refreshing()
        with self._lock:
            state = self._pick(wanted, (), prefer)
        if state is None:
            # A model pulled since the last refresh: read the lists again before a 404.
            self.refresh(asked_at=self._clock())
            with self._lock:
                state = self._pick(wanted, (), prefer)
            if state is None:
                raise model_not_found(model)
        return state

    def _choose_other(self, model: str, exclude: Collection[str]) -> ServerState | None:
        """A server for a retry: up, listing ``model``, not in ``exclude``; or None."""
        with self._lock:
            return self._pick(canonical_model_name(model), exclude)

    def _pick(
        self, wanted: str, exclude: Collection[str], prefer: str | None = None
    ) -> ServerState | None:
        state = choose_server(self._states, wanted, self._clock(), exclude, not exclude, prefer)
        if state is not None:
            state.last_chosen = next(self._turns)
        return state

    def _call_on(
        self, state: ServerState, call: Callable[[OllamaClient], _Answer], on_server: OnServer
    ) -> _Answer:
        if on_server is not None:
            on_server(state.url)
        with self._lock:
            state.in_flight += 1
        ended = partial(self._ended, state)
        try:
            answer = call(self.clients[state.url])
        except BaseException:
            # Errors, and a pump's greenlet killed while waiting for Ollama's first byte.
            ended()
            raise
        if isinstance(answer, UpstreamStream):
            answer.call_on_close(ended)
        else:
            ended()
        return answer

    def _ended(self, state: ServerState) -> None:
        with self._lock:
            state.in_flight -= 1

    def _forget(self, state: ServerState, model: str) -> None:
        """``model`` is gone from ``state``'s server until its next /api/tags says otherwise."""
        with self._lock:
            if state.models is not None:
                state.models = state.models - {model}

    def _mark_down(self, url: str, error: ApiError) -> None:
        with self._lock:
            state = next(s for s in self._states if s.url == url)
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
            with self._lock:
                due = [
                    s
                    for s in self._states
                    if not due_only or s.refresh_due(now, self.refresh_interval)
                ]
            if due:
                concurrently(self._read_tags, due)
            if not due_only:
                self._refreshed_all_at = self._clock()

    def _read_tags(self, state: ServerState) -> dict[str, Any] | ApiError:
        """One server's /api/tags, noted in the table; its failure is returned, not raised."""
        try:
            answer = self.clients[state.url].tags()
        except ApiError as error:
            if self._routing:
                self._mark_down(state.url, error)
            return error
        if self._routing:
            with self._lock:
                if state.down_until:
                    log.warning("Ollama at %s is back", state.url)
                state.models = model_names(answer)
                state.down_until, state.reason = 0.0, None
                state.refreshed_at = self._clock()
        self._read_loaded(state)
        return answer

    def _read_loaded(self, state: ServerState) -> None:
        """One server's /api/ps, noted in the table (read with its models, so as often); a
        failure leaves it unknown rather than marking the server down."""
        try:
            loaded: dict[str, LoadedModel] | None = loaded_models(self.clients[state.url].loaded())
        except ApiError:
            loaded = None
        with self._lock:
            state.loaded = loaded

    def _start_refreshing(self) -> None:
        """Read the lists once, then keep them fresh in a background thread (a greenlet under
        gevent); started at first use, so in each worker, never in gunicorn's master."""
        if self._refresher is not None or not self._routing:
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

    def _refresh_forever(self) -> None:
        # Half the shorter interval: a server is read again at most that late.
        tick = min(self.refresh_interval, self.retry_interval) / 2
        while True:
            time.sleep(tick)
            try:
                self.refresh(due_only=True)
            except Exception:
                log.exception("refreshing the Ollama servers' models failed")

    def _probe(self, state: ServerState) -> dict[str, Any]:
        probe: dict[str, Any] = {"url": state.url}
        try:
            probe["version"] = self.clients[state.url].version()
        except ApiError as error:
            probe.update(status="disconnected", reason=error.message)
        else:
            probe["status"] = "connected"
        if state.models is not None:
            probe["models"] = len(state.models)
        return probe
