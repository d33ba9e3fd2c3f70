"""OllamaServers: the Ollama servers behind the gateway, one chosen per call by its model.

It owns one OllamaClient per ``OLLAMA_BASE_URL`` entry and offers the calls the views and the
stream pumps make (``tags``, ``post``, ``post_all``, ``stream``, ``health``), so
they never know how many servers there are. With one server every call goes straight to it.
With several, each worker keeps a table of them (``server_table``: the models each lists and
has loaded, which are down) and counts here the calls each server has in flight from this
worker, by model: with ``ROUTING=least-in-flight`` the fewest wins, ties go to the one chosen
least recently (round-robin); with ``ROUTING=warm`` (the default) a call takes a free slot on a
server that has its model loaded, else on one where it will load (``routing.place``), or waits
its turn (``admission``), and a conversation goes back to its server (``affinity``).
A call that failed to connect, or timed out before its first byte, is retried once on another
server that is up and lists the model, and its server is marked down. Nothing is retried once
a stream has been handed over: its bytes may have reached the client. An error Ollama answered
(400, 500) is never a reason to try elsewhere, except a 404 for the model, which means that
server's list was stale: the model is forgotten there and the call goes to another server that
lists it, if any; and a 503 busy (Ollama's queue is full), after which that server is skipped
for a moment. The rules that choose a server are in ``routing``, the probes behind /health in
``server_health``; this module places the calls, makes them and counts their slots.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Collection, Sequence
from functools import partial
from typing import Any, TypeVar

from .admission import Admission
from .affinity import Affinity, Conversations
from .concurrent_calls import concurrently
from .errors import ApiError, model_not_found
from .model_names import canonical_model_name
from .ollama import DEFAULT_MAX_ANSWER_BYTES, OllamaClient, UpstreamStream
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
    place,
    public_url,
    warm_slots,
)
from .server_health import ServerHealth
from .server_table import ServerTable

log = logging.getLogger(__name__)

# Failures of a server, not of the request: the call never got an answer started.
FAILOVER_CODES = frozenset({"ollama_unavailable", "upstream_timeout"})

_Answer = TypeVar("_Answer", dict[str, Any], UpstreamStream)
# Told the URL of each server a call is sent to (the Exchange records it for logs, metrics).
OnServer = Callable[[str], None] | None
# Told the seconds a call waited in the queue for its slot.
OnQueued = Callable[[float], None] | None


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
        self.table = ServerTable(
            self.clients, refresh_interval, retry_interval, clock, self._loaded, self._read_again
        )
        self.slots = slots or Slots()
        # What the metrics hear of (``metrics`` sets its own).
        self.events = RoutingEvents()
        # ROUTING=warm: slots, the queue and conversations; least-in-flight has none.
        self.admission: Admission | None = None
        if routing == "warm":
            self.admission = Admission(max_queue, queue_timeout, clock, self._queued)
        self.conversations = Conversations()
        # Conversations go back to their server only where there is a choice to make.
        self._by_conversation = self.admission is not None and self.table.several
        self._clock = clock
        self._turns = itertools.count(1)
        self._health = ServerHealth(self.table, clock)

    @property
    def base_url(self) -> str:
        """The servers' URLs as OLLAMA_BASE_URL lists them."""
        return ",".join(self.clients)

    @property
    def states(self) -> list[ServerState]:
        """A snapshot of the table, for tests and /health."""
        return self.table.snapshot()

    # The calls the views and the pumps make.

    def tags(self) -> dict[str, Any]:
        """The models of every server that answers, each listed once; fails if none answers."""
        return self.table.tags()

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
        self.table.start_refreshing()
        with self.table.lock:
            state = choose_server(self.table.rows, canonical_model_name(model), self._clock())
        return self.clients[(state or self.table.rows[0]).url].show(model)

    def loaded_on(self, model: str) -> list[tuple[str, LoadedModel]]:
        """The servers ``model`` is loaded on (URL and what /api/ps said), as last read."""
        return self.table.loaded_on(model)

    def routing_snapshot(self) -> dict[str, Any]:
        """This worker's slots in use by server (its public URL) and model, with the server's
        slots for the model, and its calls waiting by model: for the status page."""
        with self.table.lock:
            running = {
                public_url(s.url): {
                    model: [count, self.slots.total(s.url, model)]
                    for model, count in s.running.items()
                }
                for s in self.table.rows
                if s.running
            }
        waiting = {} if self.admission is None else self.admission.waiting()
        return {"running": running, "waiting": waiting}

    def health(self) -> dict[str, Any]:
        """Every server's state, healthy while one answers (``server_health``: probed at most
        once every HEALTH_MAX_AGE s, one probe at a time)."""
        return self._health.report()

    def refresh(self, asked_at: float | None = None, due_only: bool = False) -> None:
        """Read every server's models now (``due_only``: those due); see ``ServerTable``."""
        self.table.refresh(asked_at, due_only)

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
            if not self.table.several:
                raise
            if error.code == "model_not_found":
                # Its list was stale (the model was removed there): another may still have it.
                self.table.forget(state, wanted)
            elif error.code in FAILOVER_CODES:
                self.table.mark_down(state.url, error)
            elif error.code == "ollama_busy" and self.admission is not None:
                self.table.mark_busy(state)
            else:
                raise
            other = self._place_other(wanted, state.url, on_queued)
            if other is None:
                raise
            log.warning("%s failed (%s); retrying on %s", state.url, error.code, other.state.url)
            placement = other
            answer = self._call_on(placement, wanted, call, on_server)
        if self._by_conversation:
            self.conversations.remember(affinity.key, placement.state.url)
        return answer

    def _place(self, model: str, affinity: Affinity, on_queued: OnQueued) -> Placement:
        """A server and a slot for a call to ``model``: at once, or after its turn in the
        queue (ROUTING=warm); a 404 when no server lists the model."""
        wanted = canonical_model_name(model)
        if self.admission is None:
            state = self._choose(model, affinity.server)
            with self.table.lock:
                self._reserve(state, wanted)
            if on_queued is not None:
                on_queued(0.0)
            return Placement(state, LOADED)
        self._choose(model, pick=False)
        prefer = affinity.server
        if prefer is None and self._by_conversation:
            prefer = self.conversations.server(affinity.key)
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
                with self.table.lock:
                    self._reserve(state, wanted)
            return None if state is None else Placement(state, FAILOVER)
        with self.table.lock:
            now = self._clock()
            others = [
                s
                for s in self.table.rows
                if s.url != failed and s.may_have(wanted) and s.is_up(now)
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
        with self.table.lock:
            now = self._clock()
            listing = [s for s in self.table.rows if s.url not in exclude and s.may_have(wanted)]
            placement: Placement | None
            if listing and not any(s.is_up(now) for s in listing):
                # Every server with the model is down: the first back is tried anyway; it may
                # be back, and if not, its error names it.
                state = min(listing, key=lambda s: s.down_until)
                placement = Placement(state, LOADED if state.is_warm(wanted) else COLD)
            else:
                slots = partial(self._slots_of, wanted)
                warm = warm_slots(self.table.rows, wanted, now, slots)
                spill = self.admission.worth_loading(wanted, ahead, warm)
                placement = place(self.table.rows, wanted, now, slots, prefer, exclude, spill)
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
        if self.table.several:
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
        self.table.start_refreshing()
        choose = partial(self._pick, wanted, (), prefer) if pick else partial(self._lists, wanted)
        with self.table.lock:
            state = choose()
        if state is None:
            # A model pulled since the last refresh: read the lists again before a 404.
            self.table.refresh(asked_at=self._clock())
            with self.table.lock:
                state = choose()
            if state is None:
                raise model_not_found(model)
        return state

    def _lists(self, wanted: str) -> ServerState | None:
        return next((s for s in self.table.rows if s.may_have(wanted)), None)

    def _choose_other(self, model: str, exclude: Collection[str]) -> ServerState | None:
        """A server for a retry: up, listing ``model``, not in ``exclude``; or None."""
        with self.table.lock:
            return self._pick(canonical_model_name(model), exclude)

    def _pick(
        self, wanted: str, exclude: Collection[str], prefer: str | None = None
    ) -> ServerState | None:
        state = choose_server(self.table.rows, wanted, self._clock(), exclude, not exclude, prefer)
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
        with self.table.lock:
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
        self.table.read_loaded_soon(state)
        return seconds

    # What the table tells: how many models a server has loaded, and that it read servers again.

    def _loaded(self, url: str, count: int) -> None:
        self.events.loaded(public_url(url), count)

    def _read_again(self) -> None:
        if self.admission is not None:
            self.admission.dispatch_all()
