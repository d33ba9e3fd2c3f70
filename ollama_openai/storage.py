"""Storage that gunicorn's workers share: one SQLite file per machine, or one Redis for several
gateway instances. The response store and the usage ledger are both built on it.

``SqliteFile`` opens its file in each process at the first call (never in gunicorn's master,
and again after a fork), keeps one connection used under a lock, in WAL mode so that readers go
on while one process writes. ``RedisDatabase`` holds a blocking pool, which a gevent worker
serving thousands of requests needs. Both turn their failures into ``StoreUnavailable``, with a
message that names the store and never a password.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

IN_MEMORY = ":memory:"
# Milliseconds a write waits for another process's write to finish before giving up.
BUSY_TIMEOUT_MS = 5000
# Seconds a Redis call waits for a free connection of the pool.
POOL_TIMEOUT = 5


def sqlite_path(uri: str) -> str | None:
    """The SQLite file a store's URI names (``IN_MEMORY`` for ``memory://``); None for Redis."""
    parts = urlsplit(uri)
    if parts.scheme in ("redis", "rediss"):
        return None
    return IN_MEMORY if parts.scheme == "memory" else parts.path


class StoreUnavailable(Exception):
    """A shared store did not answer: Redis is unreachable, or the SQLite file cannot be opened
    or written. The store's users say what the client gets (a 503 it may retry, or a log line
    when the client has its answer already)."""


class SqliteFile:
    """One SQLite file (or ``IN_MEMORY``, private to the object) with ``schema``, shared by
    every process of a machine; ``what`` names it in errors ("the usage ledger")."""

    def __init__(self, path: str, schema: str, what: str) -> None:
        self.path = path
        self._schema = schema
        self._what = what
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        # Connections inherited through a fork: kept, never used, as closing them in the child
        # could disturb the parent's (SQLite: "do not carry a connection across a fork").
        self._inherited: list[sqlite3.Connection] = []

    @contextmanager
    def _database(self) -> Iterator[sqlite3.Connection]:
        """This process's connection, under the lock; SQLite's failures as StoreUnavailable."""
        with self._lock:
            try:
                yield self._connect()
            except (sqlite3.DatabaseError, OSError) as error:
                raise StoreUnavailable(f"{self._what} {self.path} failed: {error}") from error

    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None and self._pid == os.getpid():
            return self._connection
        if self._connection is not None:
            self._inherited.append(self._connection)
            self._connection = None
        if self.path != IN_MEMORY:
            _create_private(Path(self.path))
        connection = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level="IMMEDIATE",
            # Every greenlet of a gevent worker runs on one thread; the lock orders them.
            check_same_thread=False,
        )
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            # With WAL, NORMAL loses at most the last writes on a power cut, never the file.
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.executescript(self._schema)
        except BaseException:
            connection.close()
            raise
        self._connection, self._pid = connection, os.getpid()
        return connection


def _create_private(path: Path) -> None:
    """Create the file (and its directory) readable by this user only: it holds conversations
    and who used what. SQLite gives its -wal and -shm files the same permissions."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))


class RedisDatabase:
    """A Redis server reached through a blocking pool; ``what`` names it in errors."""

    def __init__(self, url: str, what: str, max_connections: int) -> None:
        self._what = what
        parts = urlsplit(url)
        # Where, for messages: never the password the URL may hold.
        self.location = f"{parts.hostname}:{parts.port or 6379}/{parts.path.strip('/') or 0}"
        # Connections open at the first call (redis-py reopens them after a fork). A caller
        # beyond max_connections waits for a free one (a gevent worker serves thousands of
        # requests). One quick retry covers a connection Redis closed; more would only delay
        # the failure.
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=POOL_TIMEOUT,
            socket_connect_timeout=2,
            socket_timeout=5,
            retry=Retry(NoBackoff(), 1),
        )
        self._redis = redis.Redis(connection_pool=pool)

    @contextmanager
    def _unavailable(self) -> Iterator[None]:
        """Redis' failures (down, timeout, out of memory, read-only) as StoreUnavailable."""
        try:
            yield
        except redis.RedisError as error:
            raise StoreUnavailable(
                f"{self._what} (Redis at {self.location}) failed: {error}"
            ) from error
