"""The usage ledger (per key, model and UTC day: requests, prompt and completion tokens) and the
leases of each key's requests in flight, shared by every worker and, in Redis, every instance.

``open_usage_store(settings)`` picks the backend from ``USAGE_STORE_URI``:
  ``sqlite:///path``   one file every worker process of this machine shares (the default)
  ``redis://...``      one Redis every gateway instance shares: one budget across them
  ``memory://``        SQLite in memory, private to the process (to each store): for tests
Every store raises ``StoreUnavailable`` when it cannot answer.
"""

from __future__ import annotations

from ..config import Settings
from ..storage import StoreUnavailable, sqlite_path
from .base import MAX_DAYS, Usage, UsageStore, days
from .redis_ledger import RedisUsage
from .sqlite_ledger import SqliteUsage

__all__ = [
    "MAX_DAYS",
    "RedisUsage",
    "SqliteUsage",
    "StoreUnavailable",
    "Usage",
    "UsageStore",
    "days",
    "open_usage_store",
]


def open_usage_store(settings: Settings) -> UsageStore:
    """The store ``settings`` name; nothing is opened or connected before its first call."""
    path = sqlite_path(settings.usage_store_uri)
    if path is None:
        return RedisUsage(settings.usage_store_uri, settings.usage_retention_days)
    return SqliteUsage(path, settings.usage_retention_days)
