"""The usage store's contract: the ledger's rows, the leases of requests in flight, and how a
store fails.

The ledger holds one row per key, model and UTC day: the requests answered and their prompt and
completion tokens. A lease is one of a key's ``max_concurrent`` slots, held by a request in
flight until its answer closes, or until it expires if its worker died. The only error a store
raises on purpose is ``StoreUnavailable``; anything else is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

from ..storage import StoreUnavailable as StoreUnavailable

# The most days one read of the ledger covers.
MAX_DAYS = 366


@dataclass(frozen=True)
class Usage:
    """The requests and tokens of one key on one model on one UTC day."""

    # ISO date, "2025-06-14".
    day: str
    # The key's name (its fingerprint for a key without one); "" for requests made while the
    # gateway had no keys.
    key: str
    # The model as the client named it (an alias stays an alias).
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class UsageStore(Protocol):
    """What budgets, concurrency limits and ``/v1/usage`` need; ``open_usage_store`` picks the
    backend."""

    def record(self, usage: Usage) -> None:
        """Add ``usage`` to its row, committed when this returns."""
        ...

    def spent(self, key: str, first_day: str, last_day: str) -> dict[str, int]:
        """The tokens ``key`` used on each day from ``first_day`` to ``last_day`` (inclusive);
        a day without use is absent."""
        ...

    def rows(
        self, first_day: str, last_day: str, key: str | None = None, model: str | None = None
    ) -> list[Usage]:
        """The rows of those days, by day, key and model; only ``key``'s or ``model``'s when
        given."""
        ...

    def acquire(self, key: str, lease: str, most: int, ttl: float) -> bool:
        """Take a slot of ``key`` for ``ttl`` seconds under the id ``lease``; False when its
        ``most`` slots are all held (expired ones are freed first)."""
        ...

    def renew(self, leases: list[tuple[str, str]], ttl: float) -> None:
        """Hold these ``(key, lease)`` slots ``ttl`` more seconds."""
        ...

    def release(self, key: str, lease: str) -> None:
        """Free a slot."""
        ...


def days(first_day: str, last_day: str) -> list[str]:
    """Every ISO date from ``first_day`` to ``last_day``, both included."""
    first, last = date.fromisoformat(first_day), date.fromisoformat(last_day)
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
