"""Stored responses (placeholder until the shared SQLite/Redis store lands): one process's
memory, enough for the Responses endpoints to be built against the store's interface."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from .config import Settings

MAX_CHAIN = 1000


@dataclass(frozen=True)
class StoredResponse:
    """One stored response: what GET returns, what input_items lists, what a continuation
    needs."""

    id: str
    owner: str | None
    previous_id: str | None
    created_at: int
    input_items: list[dict[str, Any]]
    output_items: list[dict[str, Any]]
    response: dict[str, Any]
    server: str | None = None


@dataclass
class MemoryStore:
    """Responses in this process's memory."""

    _rows: dict[str, StoredResponse] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def save(self, stored: StoredResponse) -> None:
        with self._lock:
            self._rows[stored.id] = stored

    def load(self, response_id: str, owner: str | None) -> StoredResponse | None:
        with self._lock:
            stored = self._rows.get(response_id)
        return stored if stored is not None and stored.owner == owner else None

    def delete(self, response_id: str, owner: str | None) -> bool:
        with self._lock:
            stored = self._rows.get(response_id)
            if stored is None or stored.owner != owner:
                return False
            del self._rows[response_id]
            return True

    def chain(self, response_id: str, owner: str | None) -> list[StoredResponse] | None:
        stored = self.load(response_id, owner)
        if stored is None:
            return None
        links = [stored]
        while links[-1].previous_id and len(links) < MAX_CHAIN:
            previous = self.load(links[-1].previous_id, owner)
            if previous is None:
                break
            links.append(previous)
        return links[::-1]


ResponseStore = MemoryStore


def open_store(settings: Settings) -> ResponseStore:
    return MemoryStore()
