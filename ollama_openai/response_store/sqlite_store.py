"""SqliteStore: responses in one SQLite file that every worker process of a machine shares.

The file is a ``storage.SqliteFile``: opened by each process at its first call, one connection
under a lock, WAL. Writes are one short transaction, so the busy timeout is rarely waited on.
SQLite calls block the process's gevent loop for their duration: about a tenth of a millisecond
(see bench/response_store.py). ``memory://`` is the same store in memory, private to its object.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from ..storage import SqliteFile
from . import base
from .base import FORGET_BATCH, StoredResponse, from_json, to_json

# Seconds between two deletions of expired rows by one process (loads skip them meanwhile).
PURGE_INTERVAL = 60.0

# The running total of stored bytes is kept by triggers, so the size bound costs no scan. The
# whole schema is created in one transaction: workers starting together must not seed the
# total twice.
SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    owner TEXT,
    saved_at REAL NOT NULL,
    size INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_by_age ON responses (saved_at);
CREATE TABLE IF NOT EXISTS stored_bytes (total INTEGER NOT NULL);
INSERT INTO stored_bytes SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM stored_bytes);
CREATE TRIGGER IF NOT EXISTS count_insert AFTER INSERT ON responses
    BEGIN UPDATE stored_bytes SET total = total + new.size; END;
CREATE TRIGGER IF NOT EXISTS count_delete AFTER DELETE ON responses
    BEGIN UPDATE stored_bytes SET total = total - old.size; END;
CREATE TRIGGER IF NOT EXISTS count_update AFTER UPDATE OF size ON responses
    BEGIN UPDATE stored_bytes SET total = total - old.size + new.size; END;
COMMIT;
"""
UPSERT = """
INSERT INTO responses (id, owner, saved_at, size, record) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    owner = excluded.owner, saved_at = excluded.saved_at,
    size = excluded.size, record = excluded.record
"""


class SqliteStore(SqliteFile):
    """A ResponseStore in a SQLite file (or in memory); ``ttl`` seconds, ``max_bytes`` of JSON."""

    def __init__(
        self,
        path: str,
        ttl: float,
        max_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(path, SCHEMA, "the response store")
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._clock = clock
        self._next_purge = 0.0

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    def save(self, stored: StoredResponse) -> None:
        record = to_json(stored)
        size = len(record.encode("utf-8"))
        with self._database() as db:
            now = self._clock()
            # "with db" is one transaction (BEGIN IMMEDIATE at the first write), or none.
            with db:
                db.execute(UPSERT, (stored.id, stored.owner, now, size, record))
                if now >= self._next_purge:
                    self._purge_expired(db, now)
                self._evict_oldest(db, keep=stored.id)

    def load(self, response_id: str, owner: str | None) -> StoredResponse | None:
        with self._database() as db:
            row = db.execute(
                "SELECT record FROM responses WHERE id = ? AND owner IS ? AND saved_at > ?",
                (response_id, owner, self._clock() - self.ttl),
            ).fetchone()
        return None if row is None else from_json(row[0])

    def delete(self, response_id: str, owner: str | None) -> bool:
        with self._database() as db, db:
            deleted = db.execute(
                "DELETE FROM responses WHERE id = ? AND owner IS ? AND saved_at > ?",
                (response_id, owner, self._clock() - self.ttl),
            ).rowcount
        return deleted > 0

    def chain(self, response_id: str, owner: str | None) -> list[StoredResponse] | None:
        # A load per link: about 20 µs each, so even MAX_CHAIN links hold the loop briefly.
        newest = self.load(response_id, owner)
        if newest is None:
            return None
        links = [newest]
        while len(links) < base.MAX_CHAIN and links[-1].previous_id is not None:
            link = self.load(links[-1].previous_id, owner)
            if link is None:
                break
            links.append(link)
        links.reverse()
        return links

    def _purge_expired(self, db: sqlite3.Connection, now: float) -> None:
        purged = db.execute(
            "DELETE FROM responses WHERE id IN"
            " (SELECT id FROM responses WHERE saved_at <= ? ORDER BY saved_at LIMIT ?)",
            (now - self.ttl, FORGET_BATCH),
        ).rowcount
        # A full batch means more are waiting: take the next one at the next save.
        self._next_purge = now if purged == FORGET_BATCH else now + PURGE_INTERVAL

    def _evict_oldest(self, db: sqlite3.Connection, keep: str) -> None:
        (total,) = db.execute("SELECT total FROM stored_bytes").fetchone()
        if total <= self.max_bytes:
            return
        doomed = []
        # Read lazily, oldest first: usually the first row is enough.
        for response_id, size in db.execute(
            "SELECT id, size FROM responses WHERE id != ? ORDER BY saved_at LIMIT ?",
            (keep, FORGET_BATCH),
        ):
            doomed.append((response_id,))
            total -= size
            if total <= self.max_bytes:
                break
        db.executemany("DELETE FROM responses WHERE id = ?", doomed)
