"""SqliteUsage: the usage ledger and the leases in one SQLite file every worker of a machine
shares (a ``storage.SqliteFile``: opened by each process at its first call, WAL).

A record is one upsert, committed before ``record`` returns: about a tenth of a millisecond
during which the worker's gevent loop waits (see bench/usage_store.py). A budget check is one
indexed sum over at most a month of the key's rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ..storage import SqliteFile
from .base import Usage

# Seconds between two deletions of rows older than the retention, by one process.
PURGE_INTERVAL = 3600.0

SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS usage (
    key TEXT NOT NULL,
    day TEXT NOT NULL,
    model TEXT NOT NULL,
    requests INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    PRIMARY KEY (key, day, model)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_by_day ON usage (day);
CREATE TABLE IF NOT EXISTS leases (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_by_key ON leases (key, expires);
COMMIT;
"""
RECORD = """
INSERT INTO usage (key, day, model, requests, prompt_tokens, completion_tokens)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (key, day, model) DO UPDATE SET
    requests = requests + excluded.requests,
    prompt_tokens = prompt_tokens + excluded.prompt_tokens,
    completion_tokens = completion_tokens + excluded.completion_tokens
"""
COLUMNS = "day, key, model, requests, prompt_tokens, completion_tokens"


class SqliteUsage(SqliteFile):
    """A UsageStore in a SQLite file (or in memory); rows kept ``retention_days``."""

    def __init__(
        self, path: str, retention_days: int, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(path, SCHEMA, "the usage ledger")
        self.retention_days = retention_days
        self._clock = clock
        self._next_purge = 0.0

    def __repr__(self) -> str:
        return f"SqliteUsage({self.path!r})"

    def record(self, usage: Usage) -> None:
        row = (usage.key, usage.day, usage.model, usage.requests)
        with self._database() as db, db:
            db.execute(RECORD, (*row, usage.prompt_tokens, usage.completion_tokens))
            now = self._clock()
            if now >= self._next_purge:
                self._next_purge = now + PURGE_INTERVAL
                oldest = datetime.fromtimestamp(now, UTC).date()
                oldest -= timedelta(days=self.retention_days)
                db.execute("DELETE FROM usage WHERE day < ?", (oldest.isoformat(),))

    def spent(self, key: str, first_day: str, last_day: str) -> dict[str, int]:
        with self._database() as db:
            found = db.execute(
                "SELECT day, SUM(prompt_tokens + completion_tokens) FROM usage"
                " WHERE key = ? AND day BETWEEN ? AND ? GROUP BY day",
                (key, first_day, last_day),
            ).fetchall()
        return dict(found)

    def rows(
        self, first_day: str, last_day: str, key: str | None = None, model: str | None = None
    ) -> list[Usage]:
        # "? IS NULL OR": one statement whichever filters are given.
        with self._database() as db:
            found = db.execute(
                f"SELECT {COLUMNS} FROM usage WHERE day BETWEEN ? AND ?"
                " AND (? IS NULL OR key = ?) AND (? IS NULL OR model = ?)"
                " ORDER BY day, key, model",
                (first_day, last_day, key, key, model, model),
            ).fetchall()
        return [Usage(*row) for row in found]

    def acquire(self, key: str, lease: str, most: int, ttl: float) -> bool:
        now = self._clock()
        with self._database() as db, db:
            db.execute("DELETE FROM leases WHERE key = ? AND expires <= ?", (key, now))
            (held,) = db.execute("SELECT count(*) FROM leases WHERE key = ?", (key,)).fetchone()
            if held >= most:
                return False
            db.execute(
                "INSERT INTO leases (id, key, expires) VALUES (?, ?, ?)", (lease, key, now + ttl)
            )
        return True

    def renew(self, leases: list[tuple[str, str]], ttl: float) -> None:
        expires = self._clock() + ttl
        with self._database() as db, db:
            db.executemany(
                "UPDATE leases SET expires = ? WHERE id = ?",
                [(expires, lease) for _, lease in leases],
            )

    def release(self, key: str, lease: str) -> None:
        with self._database() as db, db:
            db.execute("DELETE FROM leases WHERE id = ?", (lease,))
