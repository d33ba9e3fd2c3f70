"""What keys spend: their token budgets, their requests in flight, and the usage ledger.

Before a generating request (chat, completions, embeddings, responses), a key whose daily or
monthly budget (``TEAM_KEYS_FILE``) is spent gets 429 ``insufficient_quota``, and a key with
``max_concurrent`` requests already in flight a 429 ``rate_limit_exceeded``. A budget is read
before the request, so the request that crosses it is answered in full.

Every answered generating request is charged to the ledger (``usage``) when its answer closes,
after its last byte, so no token waits for the ledger; and before the worker takes the next
request of that connection, so a finished request's usage survives the worker being killed.
A stream is charged Ollama's counts, or what it streamed when it ended early. When the store
does not answer, requests are served all the same (budgets and concurrency unchecked) and the
lost usage is logged.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from flask import Flask, Response, g, request

from .answered import Answered, when_answered
from .auth import current_key
from .errors import insufficient_quota, rate_limited
from .hooks import before_request
from .keyring import ApiKey
from .limits import go_duration
from .usage import StoreUnavailable, Usage, UsageStore

log = logging.getLogger(__name__)

# The endpoints that run a model, and so spend tokens and hold a slot.
GENERATING_ENDPOINTS = frozenset(
    {
        "openai.chat_completions",
        "openai.legacy_completions",
        "openai.create_embeddings",
        "responses.create_response",
    }
)
# Seconds a slot is held without being renewed: how long a worker killed with SIGKILL keeps
# its slots. Held slots are renewed three times within it.
LEASE_SECONDS = 60.0


def init_app(app: Flask, store: UsageStore, keys: bool) -> None:
    """Check budgets and concurrency before generating requests (``keys``: when API keys are
    on, the only way to have them); charge usage as they close. Call after
    ``limits.init_app``: a request over its rate limit takes no slot."""
    leases = Leases(store)

    def check_spending() -> None:
        key = current_key()
        if key is None or request.endpoint not in GENERATING_ENDPOINTS:
            return
        try:
            check_budgets(store, key, time.time())
            if key.max_concurrent is not None:
                g.lease = leases.acquire(key)
        except StoreUnavailable as error:
            log.warning("budgets and concurrency unchecked: %s", error)

    if keys:
        before_request(app)(check_spending)

    @when_answered(app)
    def charge_when_closed(answered: Answered, response: Response) -> Callable[[], None]:
        lease = g.pop("lease", None)

        def on_close() -> None:
            if lease is not None:
                leases.release(lease)
            exchange = answered.exchange
            if exchange is None or exchange.model is None or answered.status >= 400:
                return
            prompt, completion = exchange.charged_usage()
            day = utc_date(time.time()).isoformat()
            usage = Usage(day, answered.key or "", exchange.model, 1, prompt, completion)
            try:
                store.record(usage)
            except StoreUnavailable as error:
                log.error("usage not recorded (%s): %s", usage, error)

        return on_close


@dataclass(frozen=True)
class Budget:
    """Where a key stands against one of its budgets."""

    period: str  # "day" or "month"
    limit: int
    used: int
    # Unix seconds at which the period ends (UTC midnight, the first of the next month).
    resets_at: int

    def to_dict(self, key: str) -> dict[str, object]:
        """As ``/v1/usage`` lists it."""
        return {
            "key": key,
            "period": self.period,
            "limit": self.limit,
            "used": self.used,
            "remaining": max(0, self.limit - self.used),
            "resets_at": self.resets_at,
        }


def budgets(store: UsageStore, key: ApiKey, now: float) -> list[Budget]:
    """The key's budgets (none, one or both) with what it used of each; one read of the store."""
    if not key.has_budget:
        return []
    today = utc_date(now)
    month = today.replace(day=1)
    spent = store.spent(key.name, month.isoformat(), today.isoformat())
    found = []
    if key.daily_tokens is not None:
        tomorrow = today + timedelta(days=1)
        found.append(
            Budget("day", key.daily_tokens, spent.get(today.isoformat(), 0), _epoch(tomorrow))
        )
    if key.monthly_tokens is not None:
        next_month = (month + timedelta(days=32)).replace(day=1)
        found.append(Budget("month", key.monthly_tokens, sum(spent.values()), _epoch(next_month)))
    return found


def check_budgets(store: UsageStore, key: ApiKey, now: float) -> None:
    """A 429 ``insufficient_quota`` naming the spent budget and when it resets."""
    for budget in budgets(store, key, now):
        if budget.used >= budget.limit:
            wait = go_duration(max(0, budget.resets_at - int(now)))
            reset = datetime.fromtimestamp(budget.resets_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            raise insufficient_quota(
                f"The key '{key.name}' has spent its {_ADJECTIVE[budget.period]} budget of "
                f"{budget.limit} tokens ({budget.used} used this {budget.period}, UTC). "
                f"It resets at {reset}, in {wait}."
            )


_ADJECTIVE = {"day": "daily", "month": "monthly"}


class Leases:
    """The slots this process holds (a key's requests in flight), renewed while held, so that
    a request that runs for an hour keeps its slot and one whose worker died frees it."""

    def __init__(self, store: UsageStore, ttl: float = LEASE_SECONDS) -> None:
        self._store = store
        self._ttl = ttl
        self._held: dict[str, str] = {}
        self._lock = threading.Lock()
        self._renewing = False

    def acquire(self, key: ApiKey) -> str:
        """A new slot of ``key``; a 429 when its ``max_concurrent`` are all held."""
        most = key.max_concurrent or 1
        lease = uuid.uuid4().hex
        if not self._store.acquire(key.name, lease, most, self._ttl):
            raise rate_limited(
                f"The key '{key.name}' has {most} requests in flight, its most at once. "
                "Try again when one has ended.",
                1,
            )
        with self._lock:
            self._held[lease] = key.name
            start, self._renewing = not self._renewing, True
        if start:
            # A greenlet under gunicorn's gevent workers (threading is patched), else a thread.
            threading.Thread(target=self._renew, name="lease-renewal", daemon=True).start()
        return lease

    def release(self, lease: str) -> None:
        with self._lock:
            key = self._held.pop(lease, None)
        if key is None:
            return
        try:
            self._store.release(key, lease)
        except StoreUnavailable as error:
            log.warning("a slot of the key '%s' stays held until it expires: %s", key, error)

    def _renew(self) -> None:
        while True:
            time.sleep(self._ttl / 3)
            with self._lock:
                held = [(key, lease) for lease, key in self._held.items()]
                if not held:
                    self._renewing = False
                    return
            try:
                self._store.renew(held, self._ttl)
            except StoreUnavailable as error:
                log.warning("slots not renewed: %s", error)


def utc_date(now: float) -> date:
    """The UTC day of a Unix time: budgets and the ledger count UTC days."""
    return datetime.fromtimestamp(now, UTC).date()


def _epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
