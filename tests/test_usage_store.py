"""The usage store: ledger rows added up per key, model and day, the budget reads, filters,
retention, the leases of requests in flight, sharing between processes, and its one failure.

Most tests run against both backends: SQLite in ``tmp_path`` and the session's real Redis, each
test under its own key prefix. Time is a ``Clock`` the test moves, never a sleep.
"""

import multiprocessing
import socket
import uuid

import pytest

from ollama_openai.config import Settings
from ollama_openai.usage import (
    RedisUsage,
    SqliteUsage,
    StoreUnavailable,
    Usage,
    days,
    open_usage_store,
)
from tests.test_response_store import Clock

DAY = 86400
# 2025-10-09, 08:53:20 UTC.
NOW = 1_760_000_000.0


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(params=["sqlite", "redis"])
def make_store(request, tmp_path, clock):
    """Stores of one backend over one test's own data, as two workers or instances share it."""
    prefix = f"test-{uuid.uuid4().hex}:"

    def make(retention_days=400):
        if request.param == "sqlite":
            return SqliteUsage(str(tmp_path / "usage.sqlite3"), retention_days, clock=clock)
        redis_url = request.getfixturevalue("redis_url")
        return RedisUsage(redis_url, retention_days, prefix=prefix, clock=clock)

    return make


@pytest.fixture
def store(make_store):
    return make_store()


def used(day, key="alice", model="llama3.2", prompt=10, completion=5):
    return Usage(day, key, model, 1, prompt, completion)


def test_records_add_up_per_key_model_and_day(store):
    store.record(used("2025-10-08"))
    store.record(used("2025-10-09", prompt=3, completion=4))
    store.record(used("2025-10-09", prompt=1, completion=2))
    store.record(used("2025-10-09", model="qwen3:8b"))
    store.record(used("2025-10-09", key="bob"))
    assert store.rows("2025-10-09", "2025-10-09") == [
        Usage("2025-10-09", "alice", "llama3.2", 2, 4, 6),
        Usage("2025-10-09", "alice", "qwen3:8b", 1, 10, 5),
        Usage("2025-10-09", "bob", "llama3.2", 1, 10, 5),
    ]
    assert store.rows("2025-10-01", "2025-10-31")[0] == Usage(
        "2025-10-08", "alice", "llama3.2", 1, 10, 5
    )


def test_rows_are_filtered_by_key_and_model(store):
    for key in ("alice", "bob"):
        for model in ("llama3.2", "qwen3:8b"):
            store.record(used("2025-10-09", key=key, model=model))
    assert [(r.key, r.model) for r in store.rows("2025-10-09", "2025-10-09", key="bob")] == [
        ("bob", "llama3.2"),
        ("bob", "qwen3:8b"),
    ]
    only = store.rows("2025-10-09", "2025-10-09", key="alice", model="qwen3:8b")
    assert [(r.key, r.model) for r in only] == [("alice", "qwen3:8b")]
    assert store.rows("2025-10-09", "2025-10-09", key="carol") == []


def test_spent_is_the_keys_tokens_per_day_of_the_range(store):
    store.record(used("2025-09-30", prompt=1000))
    store.record(used("2025-10-01", prompt=1, completion=2))
    store.record(used("2025-10-09", prompt=3, completion=4, model="qwen3:8b"))
    store.record(used("2025-10-09", prompt=5, completion=6))
    store.record(used("2025-10-09", key="bob", prompt=100))
    assert store.spent("alice", "2025-10-01", "2025-10-09") == {"2025-10-01": 3, "2025-10-09": 18}
    assert store.spent("carol", "2025-10-01", "2025-10-09") == {}


def test_odd_names_stay_apart(store):
    # Model names hold ':' and '/'; nothing a name holds can merge two rows.
    store.record(used("2025-10-09", key="a.b@c", model='hf.co/org/repo:Q4_K_M"],["x'))
    store.record(used("2025-10-09", key="", model="日本語"))
    assert {(r.key, r.model) for r in store.rows("2025-10-09", "2025-10-09")} == {
        ("a.b@c", 'hf.co/org/repo:Q4_K_M"],["x'),
        ("", "日本語"),
    }


def test_two_stores_on_the_same_data_see_each_others_records(make_store):
    # As two gunicorn workers (one SQLite file) or two gateway instances (one Redis) do.
    first, second = make_store(), make_store()
    first.record(used("2025-10-09"))
    second.record(used("2025-10-09"))
    assert first.spent("alice", "2025-10-09", "2025-10-09") == {"2025-10-09": 30}


def test_days_older_than_the_retention_are_forgotten(make_store, clock):
    clock.now = NOW
    store = make_store(retention_days=30)
    store.record(used("2025-09-01"))
    store.record(used("2025-10-09"))
    assert [r.day for r in store.rows("2025-08-01", "2025-10-31")] == ["2025-10-09"]


def test_retention_in_redis_is_each_days_expiry(redis_url, clock):
    store = RedisUsage(redis_url, 30, prefix=f"test-{uuid.uuid4().hex}:", clock=clock)
    store.record(used("2025-10-09"))
    for key in (f"{store.prefix}usage:2025-10-09", f"{store.prefix}usage-spent:2025-10-09"):
        assert 30 * DAY < store._redis.ttl(key) <= 31 * DAY


def test_days_lists_every_date_of_a_range():
    assert days("2024-02-27", "2024-03-01") == [
        "2024-02-27",
        "2024-02-28",
        "2024-02-29",
        "2024-03-01",
    ]
    assert days("2025-10-09", "2025-10-09") == ["2025-10-09"]


# --- Leases: a key's requests in flight ---


def test_a_key_gets_at_most_its_slots(make_store):
    first, second = make_store(), make_store()
    assert first.acquire("alice", "lease-1", 2, 60)
    assert second.acquire("alice", "lease-2", 2, 60)
    assert not first.acquire("alice", "lease-3", 2, 60)
    # Another key has slots of its own.
    assert second.acquire("bob", "lease-4", 2, 60)
    second.release("alice", "lease-1")
    assert first.acquire("alice", "lease-3", 2, 60)


def test_a_slot_not_renewed_expires(store, clock):
    # A worker killed with SIGKILL renews nothing: its slots come back after the lease.
    assert store.acquire("alice", "lease-1", 1, 60)
    clock.advance(59)
    assert not store.acquire("alice", "lease-2", 1, 60)
    clock.advance(1)
    assert store.acquire("alice", "lease-2", 1, 60)


def test_a_renewed_slot_stays_held(store, clock):
    assert store.acquire("alice", "lease-1", 1, 60)
    for _ in range(5):
        clock.advance(40)
        store.renew([("alice", "lease-1")], 60)
    assert not store.acquire("alice", "lease-2", 1, 60)
    store.release("alice", "lease-1")
    # A slot released before its renewal is not brought back by it.
    store.renew([("alice", "lease-1")], 60)
    assert store.acquire("alice", "lease-2", 1, 60)


# --- Processes, settings, failures ---


def _record_in_child(store):
    store.record(used("2025-10-09"))


def test_a_forked_worker_records_in_the_same_file(tmp_path, clock):
    store = SqliteUsage(str(tmp_path / "usage.sqlite3"), 400, clock=clock)
    store.record(used("2025-10-09"))
    child = multiprocessing.get_context("fork").Process(target=_record_in_child, args=(store,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert store.rows("2025-10-09", "2025-10-09")[0].requests == 2


@pytest.mark.parametrize(
    ("uri", "kind"),
    [("memory://", SqliteUsage), ("sqlite:///var/lib/x/usage.sqlite3", SqliteUsage)],
)
def test_open_usage_store_picks_the_backend(uri, kind):
    store = open_usage_store(Settings(usage_store_uri=uri, usage_retention_days=9))
    assert isinstance(store, kind)
    assert store.retention_days == 9


def test_open_usage_store_picks_redis_for_a_redis_uri(redis_url):
    assert isinstance(open_usage_store(Settings(usage_store_uri=redis_url)), RedisUsage)


def test_the_file_is_created_at_first_use_for_this_user_only(tmp_path):
    path = tmp_path / "state" / "ollama-openai" / "usage.sqlite3"
    store = open_usage_store(Settings(usage_store_uri=f"sqlite://{path}"))
    assert not path.parent.exists()
    store.record(used("2025-10-09"))
    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)


@pytest.fixture
def refusing_port():
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


@pytest.mark.parametrize(
    ("call", "arguments"),
    [
        ("record", (used("2025-10-09"),)),
        ("spent", ("alice", "2025-10-01", "2025-10-09")),
        ("rows", ("2025-10-01", "2025-10-09")),
        ("acquire", ("alice", "lease-1", 1, 60)),
        ("renew", ([("alice", "lease-1")], 60)),
        ("release", ("alice", "lease-1")),
    ],
)
def test_redis_down_is_store_unavailable_without_the_password(call, arguments, refusing_port):
    store = RedisUsage(f"redis://:hunter2@127.0.0.1:{refusing_port}/0", 400)
    with pytest.raises(StoreUnavailable) as caught:
        getattr(store, call)(*arguments)
    assert "the usage ledger (Redis at 127.0.0.1" in str(caught.value)
    assert "hunter2" not in str(caught.value) + repr(store)


def test_an_unusable_sqlite_path_is_store_unavailable(tmp_path):
    (tmp_path / "file").write_text("")
    store = SqliteUsage(str(tmp_path / "file" / "usage.sqlite3"), 400)
    with pytest.raises(StoreUnavailable, match="the usage ledger"):
        store.record(used("2025-10-09"))
