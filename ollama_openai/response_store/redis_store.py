"""RedisStore: responses in Redis, shared by every gateway instance that names the same server.

Keys, under a prefix (``ollama-openai:`` by default):
  ``response:<id>``       a hash (owner, saved_at, previous, record), expiring after the TTL
  ``responses:by-age``    a sorted set of ids by save time, for the size bound and expiry
  ``responses:sizes``     a hash id -> bytes, and ``responses:bytes`` their running total
Saving and deleting are Lua scripts, so two instances never see the count half-updated; one
more reads a response or walks a whole chain in one round trip. The scripts build record keys
from the prefix, which suits one Redis server (not Redis Cluster).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

from ..storage import RedisDatabase
from . import base
from .base import FORGET_BATCH, StoredResponse, from_json, to_json

DEFAULT_PREFIX = "ollama-openai:"
# Connections to Redis per worker process.
MAX_CONNECTIONS = 50

# KEYS: record key, by-age, sizes, bytes. ARGV[1] is the id, the last ARGV the record prefix.
_FORGET = """
local record_prefix = ARGV[#ARGV]
local function forget(id)
    local size = redis.call('HGET', KEYS[3], id) or '0'
    redis.call('DEL', record_prefix .. id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    return redis.call('DECRBY', KEYS[4], size)
end
"""
# ARGV: id, owner, saved_at, previous, record, size, ttl, expired_before, max_bytes, batch,
# record prefix.
# Expired ids are forgotten here (their record keys have gone already, by Redis' own TTL).
SAVE = (
    _FORGET
    + """
local id = ARGV[1]
forget(id)
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'saved_at', ARGV[3], 'previous', ARGV[4],
    'record', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('ZADD', KEYS[2], ARGV[3], id)
redis.call('HSET', KEYS[3], id, ARGV[6])
local total = redis.call('INCRBY', KEYS[4], ARGV[6])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[8], 'LIMIT', 0, ARGV[10])
for _, old in ipairs(expired) do
    total = forget(old)
end
local evicted = 0
while total > tonumber(ARGV[9]) and evicted < tonumber(ARGV[10]) do
    evicted = evicted + 1
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
    if oldest == nil or oldest == id then break end
    total = forget(oldest)
end
"""
)
# ARGV: id, owner, expired_before, record prefix. 1 when a visible response was deleted.
DELETE = (
    _FORGET
    + """
local found = redis.call('HMGET', KEYS[1], 'owner', 'saved_at')
if found[1] ~= ARGV[2] then return 0 end
forget(ARGV[1])
if tonumber(found[2]) <= tonumber(ARGV[3]) then return 0 end
return 1
"""
)
# ARGV: id, owner, expired_before, most links, record prefix. The records, newest first, until
# a link is missing, expired or another owner's; "" as previous ends the conversation.
LINKS = """
local records = {}
local id = ARGV[1]
while id and id ~= '' and #records < tonumber(ARGV[4]) do
    local found = redis.call('HMGET', ARGV[5] .. id, 'owner', 'saved_at', 'previous', 'record')
    if found[1] ~= ARGV[2] or tonumber(found[2]) <= tonumber(ARGV[3]) then break end
    records[#records + 1] = found[4]
    id = found[3]
end
return records
"""


class RedisStore(RedisDatabase):
    """A ResponseStore in Redis; ``ttl`` seconds, ``max_bytes`` of JSON across every instance."""

    def __init__(
        self,
        url: str,
        ttl: float,
        max_bytes: int,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(url, "the response store", MAX_CONNECTIONS)
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.prefix = prefix
        self._clock = clock
        self._save = self._redis.register_script(SAVE)
        self._delete = self._redis.register_script(DELETE)
        self._walk = self._redis.register_script(LINKS)

    def __repr__(self) -> str:
        return f"RedisStore({self.location!r}, prefix={self.prefix!r})"

    def save(self, stored: StoredResponse) -> None:
        record = to_json(stored)
        now = self._clock()
        with self._unavailable():
            self._save(
                keys=self._keys(stored.id),
                args=[
                    stored.id,
                    json.dumps(stored.owner),
                    repr(now),
                    stored.previous_id or "",
                    record,
                    len(record.encode("utf-8")),
                    max(1, math.ceil(self.ttl)),
                    repr(now - self.ttl),
                    self.max_bytes,
                    FORGET_BATCH,
                    self._record_prefix,
                ],
            )

    def load(self, response_id: str, owner: str | None) -> StoredResponse | None:
        found = self._links(response_id, owner, 1)
        return found[0] if found else None

    def delete(self, response_id: str, owner: str | None) -> bool:
        with self._unavailable():
            deleted = self._delete(
                keys=self._keys(response_id),
                args=[
                    response_id,
                    json.dumps(owner),
                    repr(self._clock() - self.ttl),
                    self._record_prefix,
                ],
            )
        return deleted == 1

    def chain(self, response_id: str, owner: str | None) -> list[StoredResponse] | None:
        return self._links(response_id, owner, base.MAX_CHAIN) or None

    def _links(self, response_id: str, owner: str | None, most: int) -> list[StoredResponse]:
        """The response and up to ``most - 1`` before it, oldest first."""
        with self._unavailable():
            records = self._walk(
                args=[
                    response_id,
                    json.dumps(owner),
                    repr(self._clock() - self.ttl),
                    most,
                    self._record_prefix,
                ]
            )
        return [from_json(record) for record in reversed(records)]

    @property
    def _record_prefix(self) -> str:
        return f"{self.prefix}response:"

    def _keys(self, response_id: str) -> list[str]:
        return [
            self._record_prefix + response_id,
            f"{self.prefix}responses:by-age",
            f"{self.prefix}responses:sizes",
            f"{self.prefix}responses:bytes",
        ]
