"""Requests counted per fixed window where ``RATE_LIMIT_STORAGE_URI`` says, for the rate limits
and the bound on wrong keys: ``memory://`` per worker process (``MemoryWindows``), ``redis://``
one count shared by every worker and every gateway instance (the ``limits`` library's).

A storage that fails (Redis stopped, unreachable) must not fail requests: the failure is logged
once, counting goes on in memory, and the storage is tried again after a pause that doubles
while it keeps failing (up to a minute), so an outage costs one request a timeout now and then,
not every request.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache
from typing import Any

from limits import RateLimitItem, WindowStats, parse_many
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

log = logging.getLogger(__name__)

# Seconds to connect to a Redis storage and to wait for each of its answers.
STORAGE_TIMEOUTS: dict[str, Any] = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
# Seconds counted in memory before a failed storage is tried again: the first pause, the longest.
FIRST_PAUSE, LONGEST_PAUSE = 1.0, 60.0


@lru_cache(maxsize=256)
def parsed_limits(text: str) -> tuple[RateLimitItem, ...]:
    """``60/minute;1000/day`` as limit items, parsed once per distinct text (config checked it)."""
    return tuple(parse_many(text))


class MemoryWindows:
    """Fixed windows counted in this process, as the ``limits`` library's fixed-window counter
    over its MemoryStorage counts them (a window opens at its first request), for about 1 us a
    count instead of 15: no lock per key and no timer thread restarted every 10 ms. Greenlets
    do not switch inside a count; windows that have ended are swept every SWEEP_SECONDS."""

    SWEEP_SECONDS = 10.0

    def __init__(self) -> None:
        # A limit and its identifiers -> [requests counted, when the window ends].
        self._windows: dict[tuple[Any, ...], list[float]] = {}
        self._next_sweep = 0.0

    def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        return self._count(item, identifiers, 1)[0] <= item.amount

    def hit_window(self, item: RateLimitItem, *identifiers: str) -> tuple[bool, WindowStats]:
        count, ends = self._count(item, identifiers, 1)
        return count <= item.amount, WindowStats(ends, max(0, item.amount - int(count)))

    def test(self, item: RateLimitItem, *identifiers: str) -> bool:
        return self._count(item, identifiers, 0)[0] < item.amount

    def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        count, ends = self._count(item, identifiers, 0)
        return WindowStats(ends, max(0, item.amount - int(count)))

    def _count(self, item: RateLimitItem, identifiers: tuple[str, ...], add: int) -> list[float]:
        now = time.time()
        if now >= self._next_sweep:
            self._next_sweep = now + self.SWEEP_SECONDS
            self._windows = {k: w for k, w in self._windows.items() if w[1] > now}
        # Not limits' key_for: a string built from escaped parts, on every count.
        key = (item.amount, item.multiples, item.GRANULARITY.seconds, identifiers)
        window = self._windows.get(key)
        if window is None or window[1] <= now:
            window = [0, now + item.get_expiry()]
            if not add:
                return window
            self._windows[key] = window
        window[0] += add
        return window


class _Storage(FixedWindowRateLimiter):
    """The limits library's fixed-window counter over a shared storage (Redis)."""

    def hit_window(self, item: RateLimitItem, *identifiers: str) -> tuple[bool, WindowStats]:
        return self.hit(item, *identifiers), self.get_window_stats(item, *identifiers)


class RateCounter:
    """Fixed-window counts, in the configured storage or, while it fails, in memory."""

    def __init__(self, storage_uri: str) -> None:
        self._uri = storage_uri
        self._counter: _Storage | MemoryWindows | None = None
        self._memory: MemoryWindows | None = None
        self._in_memory_until = 0.0
        self._pause = FIRST_PAUSE

    def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Count one request; False when it goes past ``item``'s limit."""
        answer: bool = self._call("hit", item, identifiers)
        return answer

    def hit_window(self, item: RateLimitItem, *identifiers: str) -> tuple[bool, WindowStats]:
        """``hit``, and the window after it: one count in memory, two calls to a storage."""
        answer: tuple[bool, WindowStats] = self._call("hit_window", item, identifiers)
        return answer

    def test(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Whether one more request would still be within ``item``'s limit, counting nothing."""
        answer: bool = self._call("test", item, identifiers)
        return answer

    def window(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        """When the current window ends (epoch seconds) and what is left in it."""
        answer: WindowStats = self._call("get_window_stats", item, identifiers)
        return answer

    def _call(self, method: str, item: RateLimitItem, identifiers: tuple[str, ...]) -> Any:
        if self._in_memory_until and time.monotonic() < self._in_memory_until:
            return getattr(self._in_memory(), method)(item, *identifiers)
        try:
            answer = getattr(self._storage(), method)(item, *identifiers)
        except StorageError as error:
            if not self._in_memory_until:
                log.warning(
                    "Rate limit storage unreachable - counting in memory until it is back (%s)",
                    error,
                )
            self._in_memory_until = time.monotonic() + self._pause
            self._pause = min(2 * self._pause, LONGEST_PAUSE)
            return getattr(self._in_memory(), method)(item, *identifiers)
        if self._in_memory_until:
            log.warning("Rate limit storage recovered: counting there again")
            self._in_memory_until, self._pause = 0.0, FIRST_PAUSE
        return answer

    def _storage(self) -> _Storage | MemoryWindows:
        if self._counter is None:
            if self._uri.startswith("memory:"):
                self._counter = self._in_memory()
            else:
                # Opened at first use, in the worker: a Redis client must not be shared
                # across gunicorn's fork.
                options = STORAGE_TIMEOUTS if self._uri.startswith("redis") else {}
                storage = storage_from_string(self._uri, wrap_exceptions=True, **options)
                self._counter = _Storage(storage)
        return self._counter

    def _in_memory(self) -> MemoryWindows:
        if self._memory is None:
            self._memory = MemoryWindows()
        return self._memory
