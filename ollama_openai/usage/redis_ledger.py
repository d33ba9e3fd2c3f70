"""RedisUsage: the usage ledger and the leases in Redis, shared by every gateway instance that
names the same server, so that their keys have one budget and one count of requests in flight.

Keys, under a prefix (``ollama-openai:`` by default):
  ``usage:<day>``         a hash per UTC day: ``["<key>", "<model>", "<counter>"]`` -> count,
                          the counters being requests, prompt_tokens and completion_tokens
  ``usage-spent:<day>``   a hash per UTC day: key -> its tokens that day, which budgets read
  ``leases:<key>``        a sorted set of the key's leases, scored by their expiry
Days expire after the retention (from their end). A record is one MULTI/EXEC (every counter
or none); a budget check is one round trip, and taking a lease one Lua script, so two instances
never both take the last slot.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from ..storage import RedisDatabase
from .base import Usage, days

DEFAULT_PREFIX = "ollama-openai:"
# Connections to Redis per worker process.
MAX_CONNECTIONS = 50
COUNTERS = ("requests", "prompt_tokens", "completion_tokens")

# KEYS: the key's leases. ARGV: now, most, expiry, lease id, ttl. 1 when the slot is taken.
ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[5])))
return 1
"""


class RedisUsage(RedisDatabase):
    """A UsageStore in Redis; rows kept ``retention_days``."""

    def __init__(
        self,
        url: str,
        retention_days: int,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(url, "the usage ledger", MAX_CONNECTIONS)
        self.retention_days = retention_days
        self.prefix = prefix
        self._clock = clock
        self._acquire = self._redis.register_script(ACQUIRE)

    def __repr__(self) -> str:
        return f"RedisUsage({self.location!r}, prefix={self.prefix!r})"

    def record(self, usage: Usage) -> None:
        # A day is kept ``retention_days`` from its end (a day already past that is dropped).
        day_ends = date.fromisoformat(usage.day) + timedelta(days=1)
        ends = datetime(day_ends.year, day_ends.month, day_ends.day, tzinfo=UTC).timestamp()
        keep = math.ceil(ends + self.retention_days * 86400 - self._clock())
        counts = (usage.requests, usage.prompt_tokens, usage.completion_tokens)
        with self._unavailable():
            pipe = self._redis.pipeline(transaction=True)
            for counter, count in zip(COUNTERS, counts, strict=True):
                pipe.hincrby(self._day(usage.day), _field(usage.key, usage.model, counter), count)
            pipe.hincrby(self._spent(usage.day), usage.key, usage.total_tokens)
            pipe.expire(self._day(usage.day), keep)
            pipe.expire(self._spent(usage.day), keep)
            pipe.execute()

    def spent(self, key: str, first_day: str, last_day: str) -> dict[str, int]:
        wanted = days(first_day, last_day)
        with self._unavailable():
            pipe = self._redis.pipeline(transaction=False)
            for day in wanted:
                pipe.hget(self._spent(day), key)
            found = pipe.execute()
        return {day: int(tokens) for day, tokens in zip(wanted, found, strict=True) if tokens}

    def rows(
        self, first_day: str, last_day: str, key: str | None = None, model: str | None = None
    ) -> list[Usage]:
        wanted = days(first_day, last_day)
        with self._unavailable():
            pipe = self._redis.pipeline(transaction=False)
            for day in wanted:
                pipe.hgetall(self._day(day))
            found = pipe.execute()
        rows = []
        for day, counts in zip(wanted, found, strict=True):
            by_row: dict[tuple[str, str], dict[str, int]] = {}
            for raw, count in counts.items():
                row_key, row_model, counter = json.loads(raw)
                by_row.setdefault((row_key, row_model), {})[counter] = int(count)
            for (row_key, row_model), row in sorted(by_row.items()):
                if key not in (None, row_key) or model not in (None, row_model):
                    continue
                rows.append(Usage(day, row_key, row_model, *(row.get(c, 0) for c in COUNTERS)))
        return rows

    def acquire(self, key: str, lease: str, most: int, ttl: float) -> bool:
        now = self._clock()
        with self._unavailable():
            taken = self._acquire(keys=[self._leases(key)], args=[now, most, now + ttl, lease, ttl])
        return taken == 1

    def renew(self, leases: list[tuple[str, str]], ttl: float) -> None:
        expires = self._clock() + ttl
        with self._unavailable():
            pipe = self._redis.pipeline(transaction=False)
            for key, lease in leases:
                # XX: a lease released meanwhile is not brought back.
                pipe.zadd(self._leases(key), {lease: expires}, xx=True)
                pipe.expire(self._leases(key), math.ceil(ttl))
            pipe.execute()

    def release(self, key: str, lease: str) -> None:
        with self._unavailable():
            self._redis.zrem(self._leases(key), lease)

    def _day(self, day: str) -> str:
        return f"{self.prefix}usage:{day}"

    def _spent(self, day: str) -> str:
        return f"{self.prefix}usage-spent:{day}"

    def _leases(self, key: str) -> str:
        return f"{self.prefix}leases:{key}"


def _field(key: str, model: str, counter: str) -> str:
    # JSON, so that no name can break the field apart.
    return json.dumps([key, model, counter], ensure_ascii=False, separators=(",", ":"))
