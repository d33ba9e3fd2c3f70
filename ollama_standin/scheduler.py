"""Ollama's scheduler as the stand-in plays it: slots per loaded model, a bounded queue, a load
time for a model that is not loaded, and eviction when too many are.

This module owns `Scheduler`: a request for a model waits until the model is loaded and one of
its `num_parallel` slots is free (OLLAMA_NUM_PARALLEL), loading it first when it is not (taking
`load_seconds`, evicting the least recently used idle model when `max_loaded_models` are loaded:
OLLAMA_MAX_LOADED_MODELS), and is refused with Ollama's 503 when `max_queue` requests already
wait (OLLAMA_MAX_QUEUE). A client that hangs up while waiting leaves the queue. With neither
`num_parallel` nor `max_loaded_models` set (the knobs' defaults), nothing ever waits.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

from ollama_standin.connection import Connection

# Ollama's answer when its queue is full (server/sched.go, ErrMaxQueue), with its two spaces.
BUSY_ERROR = "server busy, please try again.  maximum pending requests exceeded"
# Seconds between two looks at the client while waiting for a slot (a freed slot wakes the
# waiters at once), and how long each look lasts.
_WATCH_INTERVAL = 0.05
_HANG_UP_CHECK = 0.001


class Busy(Exception):
    """The queue is full: answer 503 with BUSY_ERROR."""


class Scheduler:
    """Who runs, who waits, what is loaded; `evict` is told each model it unloads."""

    def __init__(self, evict: Callable[[str], None]) -> None:
        self._evict = evict
        self._changed = threading.Condition()
        self.reset()

    def reset(self) -> None:
        with self._changed:
            self._running: collections.Counter[str] = collections.Counter()
            # Loaded models by name, with when each was last used (LRU eviction).
            self._resident: dict[str, float] = {}
            self._loading: set[str] = set()
            self._waiting = 0
            self.loads = 0
            # Most requests of one model running at once since the reset.
            self._peak = 0
            self._changed.notify_all()

    def counts(self) -> dict[str, Any]:
        """Requests running by model, requests waiting, models loaded, loads done, and the
        most requests of one model that ran at once."""
        with self._changed:
            return {
                "running": dict(+self._running),
                "waiting": self._waiting,
                "loaded": sorted(self._resident),
                "loads": self.loads,
                "peak_running": self._peak,
            }

    def acquire(self, name: str, knobs: dict[str, Any], connection: Connection) -> bool:
        """Wait for a slot of model `name`, loading it if needed; False when the client left
        meanwhile. Raises Busy when it cannot run at once and `max_queue` requests already wait."""
        parallel, most = knobs["num_parallel"], knobs["max_loaded_models"]
        with self._changed:
            unlimited = parallel is None and most is None and name in self._resident
            # A free slot with nobody before it: the request runs, it never queues.
            if unlimited or (not self._waiting and self._may_run(name, parallel)):
                self._take(name)
                return True
            if self._waiting >= knobs["max_queue"]:
                raise Busy
            self._waiting += 1
        try:
            while True:
                with self._changed:
                    if self._may_run(name, parallel):
                        self._take(name)
                        return True
                    if self._may_load(name, most):
                        self._loading.add(name)
                        self._count(name)
                        break
                    self._changed.wait(_WATCH_INTERVAL)
                if not connection.wait(_HANG_UP_CHECK):
                    return False
        finally:
            with self._changed:
                self._waiting -= 1
        return self._load(name, knobs["load_seconds"], connection)

    def release(self, name: str) -> None:
        """A request of `name` ended: its slot is free."""
        with self._changed:
            self._running[name] -= 1
            if name in self._resident:
                self._resident[name] = time.monotonic()
            self._changed.notify_all()

    def forget(self, name: str) -> None:
        """`name` was unloaded (keep_alive 0)."""
        with self._changed:
            self._resident.pop(name, None)

    def _take(self, name: str) -> None:
        self._count(name)
        self._resident[name] = time.monotonic()

    def _count(self, name: str) -> None:
        self._running[name] += 1
        self._peak = max(self._peak, self._running[name])

    def _may_run(self, name: str, parallel: int | None) -> bool:
        return (
            name in self._resident
            and name not in self._loading
            and (parallel is None or self._running[name] < parallel)
        )

    def _may_load(self, name: str, most: int | None) -> bool:
        """Whether `name` can start loading now, evicting an idle model to make room."""
        if name in self._resident or name in self._loading:
            return False
        if most is not None and len(self._resident) + len(self._loading) >= most:
            idle = [m for m in self._resident if not self._running[m]]
            if not idle:
                return False
            victim = min(idle, key=self._resident.__getitem__)
            del self._resident[victim]
            self._evict(victim)
        return True

    def _load(self, name: str, seconds: float, connection: Connection) -> bool:
        """Load `name` (its slot already taken); the load finishes even if the client left."""
        stayed = connection.wait(seconds)
        with self._changed:
            self._loading.discard(name)
            self._resident[name] = time.monotonic()
            self.loads += 1
            if not stayed:
                self._running[name] -= 1
            self._changed.notify_all()
        return stayed
