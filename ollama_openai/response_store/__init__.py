"""The store of the Responses API: responses kept for ``RESPONSES_TTL`` seconds, so that
``GET``/``DELETE /v1/responses/{id}``, ``input_items`` and ``previous_response_id`` find them.

``open_store(settings)`` picks the backend from ``RESPONSES_STORE_URI``:
  ``sqlite:///path``   one file every worker process of this machine shares (the default)
  ``redis://...``      one Redis every gateway instance shares (several behind Nginx)
  ``memory://``        SQLite in memory, private to the process (to each store): for tests
Every store answers for one owner at a time (the API key's fingerprint) and raises
``StoreUnavailable`` when it cannot answer.
"""

from __future__ import annotations

from ..config import Settings
from ..storage import StoreUnavailable, sqlite_path
from .base import MAX_CHAIN, ResponseStore, StoredResponse
from .redis_store import RedisStore
from .sqlite_store import SqliteStore

__all__ = [
    "MAX_CHAIN",
    "RedisStore",
    "ResponseStore",
    "SqliteStore",
    "StoreUnavailable",
    "StoredResponse",
    "open_store",
]


def open_store(settings: Settings) -> ResponseStore:
    """The store ``settings`` name; nothing is opened or connected before its first call."""
    max_bytes = settings.responses_store_max_mb * 1024 * 1024
    path = sqlite_path(settings.responses_store_uri)
    if path is None:
        return RedisStore(settings.responses_store_uri, settings.responses_ttl, max_bytes)
    return SqliteStore(path, settings.responses_ttl, max_bytes)
