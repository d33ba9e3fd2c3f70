"""Admission: the fair queue in front of the Ollama servers' slots, per model, per worker.

A call takes a slot at once when one is free (``routing.place`` decides which). Otherwise it
waits its turn: calls for one model are placed in arrival order as slots free up, each waiting
at most QUEUE_TIMEOUT seconds (then 503 ``ollama_busy``), behind at most MAX_QUEUE others
(else 429 ``rate_limit_exceeded`` at once). Both answers carry a ``Retry-After`` from the
rate at which the model's queue drains. The queue lives in one gateway worker: the README
says what that means with several workers and instances.

What a model's calls have cost lately (how long a call holds its slot, how long a cold load
takes) is kept here too: it tells a waiting call when a cold server would serve it sooner.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import RETRY_MAY_HELP, ApiError, rate_limited

# Seconds between two looks of a waiting call at the table, besides the wake-ups a freed slot
# gives: a server's busy back-off ends, a refresh finds a server back, with nobody to say so.
LOOK_AGAIN = 1.0
# What a cold load is taken to cost until this worker has seen one of the model (seconds).
DEFAULT_LOAD_SECONDS = 10.0
# Weight of the newest figure in the running averages of slot and load times.
NEWEST_WEIGHT = 0.3
# Completions of a model the drain rate is read from.
DRAIN_WINDOW = 32
# Bounds of a Retry-After (the SDKs wait at most 60 s).
RETRY_AFTER_BOUNDS = (1, 60)
# What a call is given when its turn comes (OllamaServers': a server and its slot).
_Placement = TypeVar("_Placement")


@dataclass
class ModelCosts:
    """What calls to one model cost lately, as this worker saw them."""

    # Seconds a call holds its slot (a whole answer); None until one ended.
    slot_seconds: float | None = None
    # Seconds a cold load took; None until one was seen.
    load_seconds: float | None = None
    ended: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=DRAIN_WINDOW)
    )

    def drain_rate(self, now: float) -> float | None:
        """Calls ended per second lately; None until two have ended."""
        if len(self.ended) < 2:
            return None
        span = now - self.ended[0]
        return (len(self.ended) - 1) / span if span > 0 else None


def _average(old: float | None, new: float) -> float:
    return new if old is None else old + NEWEST_WEIGHT * (new - old)


class Ticket(Generic[_Placement]):
    """One waiting call: ``place`` tries to give it a slot, given how many wait before it."""

    def __init__(self, place: Callable[[int], _Placement | None]) -> None:
        self.place = place
        self.placement: _Placement | None = None
        self.placed = threading.Event()


class Admission:
    """Per-model queues of calls waiting for a slot, and the costs of each model's calls."""

    def __init__(
        self,
        max_queue: int,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        on_queue: Callable[[str, int], None] | None = None,
    ) -> None:
        self.max_queue = max_queue
        self.timeout = timeout
        self._clock = clock
        # Told each change of a model's queue length (+1, -1): the metrics.
        self._on_queue = on_queue
        self._lock = threading.RLock()
        self._queues: dict[str, collections.deque[Ticket[Any]]] = {}
        self._costs: dict[str, ModelCosts] = collections.defaultdict(ModelCosts)

    def waiting(self) -> dict[str, int]:
        """Calls waiting now, by model (only models with some)."""
        with self._lock:
            return {model: len(queue) for model, queue in self._queues.items() if queue}

    def admit(
        self,
        model: str,
        place: Callable[[int], _Placement | None],
        release: Callable[[_Placement], None],
        first: bool = False,
    ) -> tuple[_Placement, float]:
        """A placement from ``place`` (called under this queue's lock with the number of calls
        waiting before this one) and the seconds waited for it, in arrival order; ``first``
        puts the call at the head (a retry after a failover). ``release`` gives back a slot
        the call got but can no longer use (it was killed, its client gone)."""
        with self._lock:
            queue = self._queues.setdefault(model, collections.deque())
            # Before the others only when they cannot go: a retry elsewhere, or a call far
            # enough back that a cold load is worth it.
            placement = place(len(queue))
            if placement is not None:
                return placement, 0.0
            if len(queue) >= self.max_queue:
                raise self._queue_full(model, len(queue))
            ticket = Ticket(place)
            if first:
                queue.appendleft(ticket)
            else:
                queue.append(ticket)
            self._queued(model, +1)
        started = self._clock()
        try:
            while True:
                left = started + self.timeout - self._clock()
                if ticket.placed.is_set() or left <= 0:
                    break
                if not ticket.placed.wait(min(left, LOOK_AGAIN)) and self._heads(model, ticket):
                    # Nothing woke it: the table may have changed all the same.
                    self.dispatch(model)
        except BaseException:
            self._leave(model, ticket, release)
            raise
        waited = self._clock() - started
        if self._leave(model, ticket, release=None):
            raise self._timed_out(model, waited)
        assert ticket.placement is not None
        return ticket.placement, waited

    def dispatch(self, model: str) -> None:
        """Give free slots to the calls waiting for ``model``, in their order; call it when a
        slot frees or the table changes."""
        with self._lock:
            queue = self._queues.get(model)
            if not queue:
                return
            ahead = 0
            for ticket in list(queue):
                placement = ticket.place(ahead)
                if placement is None:
                    ahead += 1
                    continue
                ticket.placement = placement
                queue.remove(ticket)
                self._queued(model, -1)
                ticket.placed.set()

    def dispatch_all(self) -> None:
        """``dispatch`` for every model with calls waiting."""
        for model in self.waiting():
            self.dispatch(model)

    def _heads(self, model: str, ticket: Ticket[Any]) -> bool:
        with self._lock:
            queue = self._queues.get(model)
            return queue is not None and len(queue) > 0 and queue[0] is ticket

    def _leave(
        self,
        model: str,
        ticket: Ticket[_Placement],
        release: Callable[[_Placement], None] | None,
    ) -> bool:
        """Take ``ticket`` out of the queue; True if it was still waiting. A slot it got is
        given back with ``release``, when one is given (the call will not run)."""
        with self._lock:
            queue = self._queues.get(model, collections.deque())
            if ticket in queue:
                queue.remove(ticket)
                self._queued(model, -1)
                return True
        if release is not None and ticket.placement is not None:
            release(ticket.placement)
        return False

    def _queued(self, model: str, change: int) -> None:
        if self._on_queue is not None:
            self._on_queue(model, change)

    # What calls cost.

    def ended(self, model: str, held: float) -> None:
        """A call to ``model`` gave its slot back after ``held`` seconds."""
        with self._lock:
            costs = self._costs[model]
            costs.slot_seconds = _average(costs.slot_seconds, held)
            costs.ended.append(self._clock())

    def loaded(self, model: str, seconds: float) -> None:
        """A cold load of ``model`` took about ``seconds``."""
        with self._lock:
            costs = self._costs[model]
            costs.load_seconds = _average(costs.load_seconds, seconds)

    def worth_loading(self, model: str, ahead: int, warm_slots: int) -> bool:
        """Whether a call with ``ahead`` calls before it would wait longer for one of the
        ``warm_slots`` than a cold load takes; unknown until a call of the model has ended."""
        with self._lock:
            costs = self._costs.get(model)
            if costs is None or costs.slot_seconds is None:
                return False
            wait = (ahead + 1) * costs.slot_seconds / max(warm_slots, 1)
            load = costs.load_seconds
        return wait > (DEFAULT_LOAD_SECONDS if load is None else load)

    def retry_after(self, model: str, waiting: int) -> int:
        """Seconds until ``waiting`` calls of ``model`` have drained, at its recent rate."""
        with self._lock:
            costs = self._costs.get(model)
            rate = None if costs is None else costs.drain_rate(self._clock())
            per_call = None if costs is None else costs.slot_seconds
        # At the rate calls ended lately, else at the time one holds its slot.
        seconds = (waiting + 1) / rate if rate is not None else (waiting + 1) * (per_call or 1.0)
        low, high = RETRY_AFTER_BOUNDS
        return min(max(math.ceil(seconds), low), high)

    def _queue_full(self, model: str, waiting: int) -> ApiError:
        return rate_limited(
            f"The gateway's queue for the model '{model}' is full ({waiting} requests wait for "
            f"a free slot on its Ollama servers, MAX_QUEUE). Try again shortly.",
            self.retry_after(model, waiting),
        )

    def _timed_out(self, model: str, waited: float) -> ApiError:
        with self._lock:
            waiting = len(self._queues.get(model, ()))
        return ApiError(
            503,
            f"Ollama is busy: no slot of the model '{model}' came free within "
            f"{waited:.0f} s (QUEUE_TIMEOUT). Try again shortly.",
            code="ollama_busy",
            headers={"Retry-After": str(self.retry_after(model, waiting)), **RETRY_MAY_HELP},
        )
