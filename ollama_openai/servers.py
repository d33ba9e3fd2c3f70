"""OllamaServers: the Ollama servers behind the gateway, one chosen per call by its model.

It owns one OllamaClient per ``OLLAMA_BASE_URL`` entry and offers the calls the views and the
stream pumps make (``tags``, ``post``, ``post_all``, ``stream``, ``health``), so
they never know how many servers there are. With one server every call goes straight to it.
With several, each worker keeps its own table, and nothing is shared between workers:
- which models each server lists: its ``/api/tags``, read at first use, in the background
  every MODEL_REFRESH_INTERVAL, and at once when a call names a model no server lists; with
  them, which models it has loaded (``/api/ps``), also read for ``tags()`` with one server;
- how many calls each server has in flight from this worker, by model: with
  ``ROUTING=least-in-flight`` the fewest wins, ties go to the one chosen least recently
  (round-robin); with ``ROUTING=warm`` (the default) a call takes a free slot on a server that
  has its model loaded, else on one where it will load (``routing.place``), or waits its turn
  (``admission``), and a conversation goes back to its server (``affinity``);
- which servers are down: one that refused a connection or timed out before its first byte
  is skipped for SERVER_RETRY_INTERVAL, then read again in the background.
A call that failed that way is retried once on another server that is up and lists the
model. Nothing is retried once a stream has been handed over: its bytes may have reached the
client. An error Ollama answered (400, 500) is never a reason to try elsewhere, except a 404
for the model, which means that server's list was stale: the model is forgotten there and
the call goes to another server that lists it, if any; and a 503 busy (Ollama's queue is
full), after which that server is skipped for BUSY_BACKOFF seconds. The rules that choose a
server are in ``routing``; this module keeps the table and makes the calls.
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

from .admission import Admission
from .affinity import Affinity, Conversations
from .errors import ApiError, model_not_found
from .model_names import canonical_model_name
from .ollama import DEFAULT_MAX_ANSWER_BYTES, OllamaClient, UpstreamStream
from .pumps import patched_gevent
from .routing import (
    COLD,
    FAILOVER,
    LOADED,
    LoadedModel,
    Placement,
    RoutingEvents,
    ServerState,
    Slots,
    choose_server,
    loaded_models,
    merge_tags,
    model_names,
    place,
    public_url,
    warm_slots,
)

log = logging.getLogger(__name__)

# /health's probe of every server: how long its report is reused, and how long a caller waits
# for a running probe before the last report is answered instead.
HEALTH_MAX_AGE = 1.0
HEALTH_WAIT = 1.0

# Failures of a server, not of the request: the call never got an answer started.
FAILOVER_CODES = frozenset({"ollama_unavailable", "upstream_timeout"})
# Seconds a server that answered 503 busy (its queue is full) is skipped; Ollama's own hint.
BUSY_BACKOFF = 1.0
ROUTINGS = ("warm", "least-in-flight")

_Answer = TypeVar("_Answer", dict[str, Any], UpstreamStream)
_Item = TypeVar("_Item")
_Result = TypeVar("_Result")
# Told the URL of each server a call is sent to (the Exchange records it for logs, metrics).
OnServer = Callable[[str], None] | None
# Told the seconds a call waited in the queue for its slot.
OnQueued = Callable[[float], None] | None


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
        routing: str = "least-in-flight",
        slots: Slots | None = None,
        max_queue: int = 512,
        queue_timeout: float = 120.0,
    ) -> None:
        self.clients = {
            url: OllamaClient(url, timeout, connect_timeout, max_answer_bytes) for url in base_urls
        }
        self.slots = slots or Slots()
        # What the metrics hear of (``metrics`` sets its own).
        self.events = RoutingEvents()
        # ROUTING=warm: slots, the queue and conversations; least-in-flight has none.
        self.admission: Admission | None = None
        if routing == "warm":
            self.admission = Admission(max_queue, queue_timeout, clock, self._queued)
        self.conversations = Conversations()
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
        # Servers whose /api/ps is to be read again soon (after a cold load).
        self._loaded_reads: set[str] = set()

    @property
    def base_url(self) -> str:
        """The servers' URLs as OLLAMA_BASE_URL lists them."""
        return ",".join(self.clients)

    @property
    def states(self) -> list[ServerState]:
        """A snapshot of the table, for tests and /health."""
        with self._lock:
            return [
                ServerState(**{**vars(state), "running": dict(state.running)})
                for state in self._states
            ]

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

    # ``on_server`` is told each server a call goes to, ``on_queued`` how long it waited for
    # its slot; ``affinity`` names the conversation, and the server that answered its last
    # turn when a stored response says so: chosen when it is up and has a free slot.

    def post(
        self,
        path: str,
        payload: dict[str, Any],
        on_server: OnServer = None,
        affinity: Affinity | None = None,
        on_queued: OnQueued = None,
    ) -> dict[str, Any]:
        """``OllamaClient.post`` on the chosen server, failing over once."""
        call = partial(OllamaClient.post, path=path, payload=payload)
        return self._call(payload["model"], call, on_server, affinity, on_queued)

    def post_all(
        self,
        path: str,
        payloads: Sequence[dict[str, Any]],
        on_server: OnServer = None,
        affinity: Affinity | None = None,
        on_queued: OnQueued = None,
    ) -> list[dict[str, Any]]:
        """Several calls at once (n > 1), each on its own chosen server; answers in order."""
        post = partial(self.post, path, on_server=on_server, affinity=affinity, on_queued=on_queued)
        return concurrently(post, payloads)

    def stream(
        self,
        path: str,
        payload: dict[str, Any],
        on_server: OnServer = None,
        affinity: Affinity | None = None,
        on_queued: OnQueued = None,
    ) -> UpstreamStream:
        """``OllamaClient.stream`` on the chosen server, failing over once before it returns."""
        call = partial(OllamaClient.stream, path=path, payload=payload)
        return self._call(payload["model"], call, on_server, affinity, on_queued)

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

    def routing_snapshot(self) -> dict[str, Any]:
        """This worker's slots in use by server (its public URL) and model, with the server's
        slots for the model, and its calls waiting by model: for the status page."""
        with self._lock:
            running = {
                public_url(s.url): {
                    model: [count, self.slots.total(s.url, model)]
                    for model, count in s.running.items()
                }
                for s in self._states
                if s.running
            }
        waiting = {} if self.admission is None else self.admission.waiting()
        return {"running": running, "waiting": waiting}

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
        affinity: Affinity | None = None,
        on_queued: OnQueued = None,
    ) -> _Answer:
        affinity = affinity or Affinity()
        wanted = canonical_model_name(model)
        placement = self._place(model, affinity, on_queued)
        try:
            answer = self._call_on(placement, wanted, call, on_server)
        except ApiError as error:
            state = placement.state
            if not self._routing:
                raise
            if error.code == "model_not_found":
                # Its list was stale (the model was removed there): another may still have it.
                self._forget(state, wanted)
            elif error.code in FAILOVER_CODES:
                self._mark_down(state.url, error)
            elif error.code == "ollama_busy" and self.admission is not None:
                self._mark_busy(state)
            else:
                raise
            other = self._place_other(wanted, state.url, on_queued)
            if other is None:
                raise
            log.warning("%s failed (%s); retrying on %s", state.url, error.code, other.state.url)
            placement = other
            answer = self._call_on(placement, wanted, call, on_server)
        self.conversations.remember(affinity.key, placement.state.url)
        return answer

    def _place(self, model: str, affinity: Affinity, on_queued: OnQueued) -> Placement:
        """A server and a slot for a call to ``model``: at once, or after its turn in the
        queue (ROUTING=warm); a 404 when no server lists the model."""
        wanted = canonical_model_name(model)
        if self.admission is None:
            state = self._choose(model, affinity.server)
            with self._lock:
                self._reserve(state, wanted)
            if on_queued is not None:
                on_queued(0.0)
            return Placement(state, LOADED)
        self._choose(model, pick=False)
        prefer = affinity.server or self.conversations.server(affinity.key)
        attempt = partial(self._attempt, wanted, prefer, ())
        release = partial(self._release, wanted)
        started = self._clock()
        try:
            placement, waited = self.admission.admit(wanted, attempt, release)
        except ApiError:
            # The queue was full, or the wait too long: the answer says how long it waited.
            if on_queued is not None:
                on_queued(self._clock() - started)
            raise
        self._placed(placement, wanted, waited, on_queued)
        return placement

    def _place_other(self, wanted: str, failed: str, on_queued: OnQueued) -> Placement | None:
        """A server other than ``failed`` for a retry: up and listing the model; with slots,
        the call waits for one there at the head of the queue. None: there is no other."""
        if self.admission is None:
            state = self._choose_other(wanted, exclude=(failed,))
            if state is not None:
                with self._lock:
                    self._reserve(state, wanted)
            return None if state is None else Placement(state, FAILOVER)
        with self._lock:
            now = self._clock()
            others = [
                s for s in self._states if s.url != failed and s.may_have(wanted) and s.is_up(now)
            ]
        if not others:
            return None
        attempt = partial(self._attempt, wanted, None, (failed,))
        release = partial(self._release, wanted)
        placement, waited = self.admission.admit(wanted, attempt, release, first=True)
        placement = Placement(placement.state, FAILOVER)
        self._placed(placement, wanted, waited, on_queued)
        return placement

    def _attempt(
        self, wanted: str, prefer: str | None, exclude: Collection[str], ahead: int
    ) -> Placement | None:
        """A free slot for ``wanted`` now, taken; None: none yet. Called by the queue, under
        its lock, with the number of calls waiting before this one."""
        assert self.admission is not None
        with self._lock:
            now = self._clock()
            listing = [s for s in self._states if s.url not in exclude and s.may_have(wanted)]
            placement: Placement | None
            if listing and not any(s.is_up(now) for s in listing):
                # Every server with the model is down: the first back is tried anyway; it may
                # be back, and if not, its error names it.
                state = min(listing, key=lambda s: s.down_until)
                placement = Placement(state, LOADED if state.is_warm(wanted) else COLD)
            else:
                slots = partial(self._slots_of, wanted)
                warm = warm_slots(self._states, wanted, now, slots)
                spill = self.admission.worth_loading(wanted, ahead, warm)
                placement = place(self._states, wanted, now, slots, prefer, exclude, spill)
            if placement is not None:
                placement.state.last_chosen = next(self._turns)
                self._reserve(placement.state, wanted)
        return placement

    def _queued(self, model: str, change: int) -> None:
        self.events.queued(model, change)

    def _slots_of(self, wanted: str, state: ServerState) -> int:
        return self.slots.of(state.url, wanted)

    def _placed(
        self, placement: Placement, wanted: str, waited: float, on_queued: OnQueued
    ) -> None:
        self.events.waited(wanted, waited)
        if self._routing:
            self.events.decided(public_url(placement.state.url), placement.reason)
        if on_queued is not None:
            on_queued(waited)

    def _reserve(self, state: ServerState, wanted: str) -> None:
        """Take a slot of ``wanted`` on ``state``'s server; under the lock."""
        state.in_flight += 1
        state.running[wanted] = state.running.get(wanted, 0) + 1
        if wanted not in state.sent:
            state.sent = state.sent | {wanted}

    def _release(self, wanted: str, placement: Placement) -> None:
        """Give back the slot of a placement whose call never ran."""
        self._ended(placement.state, wanted)

    def _choose(self, model: str, prefer: str | None = None, pick: bool = True) -> ServerState:
        """The server for ``model``; a miss reads the lists again, then raises a 404. Without
        ``pick``, any server listing it: the call then waits for a slot (``_attempt``)."""
        wanted = canonical_model_name(model)
        self._start_refreshing()
        choose = partial(self._pick, wanted, (), prefer) if pick else partial(self._lists, wanted)
        with self._lock:
            state = choose()
        if state is None:
            # A model pulled since the last refresh: read the lists again before a 404.
            self.refresh(asked_at=self._clock())
            with self._lock:
                state = choose()
            if state is None:
                raise model_not_found(model)
        return state

    def _lists(self, wanted: str) -> ServerState | None:
        return next((s for s in self._states if s.may_have(wanted)), None)

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
        self,
        placement: Placement,
        wanted: str,
        call: Callable[[OllamaClient], _Answer],
        on_server: OnServer,
    ) -> _Answer:
        """``call`` on the placement's server, whose slot it holds until its answer ends."""
        state = placement.state
        if on_server is not None:
            on_server(state.url)
        self.events.slot(public_url(state.url), +1)
        started = self._clock()
        ended = partial(self._ended, state, wanted, started)
        try:
            answer = call(self.clients[state.url])
        except BaseException:
            # Errors, and a pump's greenlet killed while waiting for Ollama's first byte.
            ended()
            raise
        if placement.reason == COLD and self.admission is not None:
            load = self._cold_loaded(state, wanted, answer, self._clock() - started)
            # The slot is timed without the load: a call on a warm server waits for none.
            ended = partial(self._ended, state, wanted, started + load)
        if isinstance(answer, UpstreamStream):
            answer.call_on_close(ended)
        else:
            ended()
        return answer

    def _ended(self, state: ServerState, wanted: str, started: float | None = None) -> None:
        """A call gave its slot back: the queue of its model may move. ``started``: when it
        was sent (None: it never was)."""
        with self._lock:
            state.in_flight -= 1
            left = state.running.get(wanted, 0) - 1
            if left > 0:
                state.running[wanted] = left
            else:
                state.running.pop(wanted, None)
        if started is not None:
            self.events.slot(public_url(state.url), -1)
        if self.admission is not None:
            if started is not None:
                self.admission.ended(wanted, self._clock() - started)
            self.admission.dispatch(wanted)

    def _cold_loaded(self, state: ServerState, wanted: str, answer: Any, seconds: float) -> float:
        """A call that loaded its model has its first byte after ``seconds``: note what the
        load took (Ollama's own figure when the whole answer came), returned, and read what
        the server has loaded now, as the load may have evicted another model."""
        if isinstance(answer, dict) and isinstance(answer.get("load_duration"), int):
            seconds = answer["load_duration"] / 1e9
        if self.admission is not None:
            self.admission.loaded(wanted, seconds)
        with self._lock:
            if state.url in self._loaded_reads or not self._routing:
                return seconds
            self._loaded_reads.add(state.url)
        threading.Thread(
            target=self._read_loaded_again, args=(state,), name="ollama-ps", daemon=True
        ).start()
        return seconds

    def _read_loaded_again(self, state: ServerState) -> None:
        with self._lock:
            self._loaded_reads.discard(state.url)
        self._read_loaded(state)
        if self.admission is not None:
            self.admission.dispatch_all()

    def _mark_busy(self, state: ServerState) -> None:
        """Ollama's queue is full there: skip it for BUSY_BACKOFF seconds."""
        log.warning("Ollama at %s is busy; skipped for %g s", state.url, BUSY_BACKOFF)
        with self._lock:
            state.busy_until = self._clock() + BUSY_BACKOFF

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
        if due and self.admission is not None:
            # A server back, a model loaded or listed: calls waiting may go now.
            self.admission.dispatch_all()

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
            if loaded is not None:
                # What it has loaded is known again: what was sent since is in there, or not.
                state.sent = frozenset()
        if loaded is not None:
            self.events.loaded(public_url(state.url), len(loaded))

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
            # What it has loaded now: /health lists it, with one server too (no table then).
            self._read_loaded(state)
        if state.models is not None:
            probe["models"] = len(state.models)
        if state.loaded is not None:
            probe["loaded"] = sorted(state.loaded)
        return probe
