"""The response store: save/load/delete, owners, expiry, the size bound, chains, sharing between
processes and instances, its settings, and its one failure (StoreUnavailable).

Most tests run against both backends: SQLite in ``tmp_path`` and the session's real Redis, each
test under its own key prefix. Time is a ``Clock`` the test moves, never a sleep.
"""

import json
import multiprocessing
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest

from ollama_openai.config import ConfigError, Settings
from ollama_openai.response_store import (
    RedisStore,
    SqliteStore,
    StoredResponse,
    StoreUnavailable,
    open_store,
    redis_store,
    sqlite_store,
)
from ollama_openai.response_store import base as store_base
from ollama_openai.response_store.base import to_json

ROOT = Path(__file__).resolve().parent.parent
TTL = 3600


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_760_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def response(number, owner="key-alice", previous=None, text="Bonjour, ça va ? 👋"):
    """A stored response shaped like the Responses API's, about 1 KiB; numbers keep ids one
    length, so every response of a test has the same stored size."""
    response_id = f"resp_{number:04d}"
    message = {
        "id": f"msg_{number:04d}",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    return StoredResponse(
        id=response_id,
        owner=owner,
        previous_id=previous,
        created_at=int(1_760_000_000 + number),
        input_items=[
            {
                "id": f"item_{number:04d}",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": f"question {number:04d} 日本語"}],
            }
        ],
        output_items=[message],
        response={
            "id": response_id,
            "object": "response",
            "status": "completed",
            "model": "llama3.2",
            "output": [message],
            "usage": {"input_tokens": 12, "output_tokens": 7, "total_tokens": 19},
            "temperature": 0.7,
            "metadata": {},
            "previous_response_id": previous,
            "store": True,
        },
        server="http://gpu-1:11434",
    )


SIZE = len(to_json(response(0)).encode("utf-8"))


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(params=["sqlite", "redis"])
def make_store(request, tmp_path, clock):
    """Stores of one backend over one test's own data: the same SQLite file or key prefix for
    every store made, as two workers or two gateway instances would share it."""
    prefix = f"test-{uuid.uuid4().hex}:"

    def make(ttl=TTL, max_bytes=10**9):
        if request.param == "sqlite":
            return SqliteStore(str(tmp_path / "responses.sqlite3"), ttl, max_bytes, clock=clock)
        redis_url = request.getfixturevalue("redis_url")
        return RedisStore(redis_url, ttl, max_bytes, prefix=prefix, clock=clock)

    return make


@pytest.fixture
def store(make_store):
    return make_store()


def ids(responses):
    return None if responses is None else [stored.id for stored in responses]


def kept(store, numbers, owner="key-alice"):
    """The numbers of the responses among ``numbers`` that ``store`` still has."""
    return [number for number in numbers if store.load(f"resp_{number:04d}", owner) is not None]


# --- Save, load, delete ---


def test_a_saved_response_comes_back_equal(store):
    saved = response(1, previous="resp_0000")
    store.save(saved)
    loaded = store.load("resp_0001", "key-alice")
    assert loaded == saved
    assert loaded.response["output"][0]["content"][0]["text"] == "Bonjour, ça va ? 👋"
    assert (loaded.previous_id, loaded.server) == ("resp_0000", "http://gpu-1:11434")


def test_an_unknown_response_is_none_everywhere(store):
    assert store.load("resp_missing", "key-alice") is None
    assert store.delete("resp_missing", "key-alice") is False
    assert store.chain("resp_missing", "key-alice") is None


def test_delete_forgets_the_response_once(store):
    store.save(response(1))
    assert store.delete("resp_0001", "key-alice") is True
    assert store.load("resp_0001", "key-alice") is None
    assert store.delete("resp_0001", "key-alice") is False


def test_saving_an_id_again_replaces_the_response(store):
    store.save(response(1, text="first"))
    store.save(response(1, text="second"))
    assert store.load("resp_0001", "key-alice") == response(1, text="second")


def test_a_second_store_on_the_same_data_sees_saves_and_deletes(make_store):
    # Two gunicorn workers on one file, or two gateway instances on one Redis.
    first, second = make_store(), make_store()
    first.save(response(1))
    assert second.load("resp_0001", "key-alice") == response(1)
    assert second.delete("resp_0001", "key-alice") is True
    assert first.load("resp_0001", "key-alice") is None


# --- Owners ---


@pytest.mark.parametrize(
    ("owner", "other"), [("key-alice", "key-bob"), ("key-alice", None), (None, "key-alice")]
)
def test_another_owner_sees_nothing_and_deletes_nothing(store, owner, other):
    store.save(response(1, owner=owner))
    store.save(response(2, owner=owner, previous="resp_0001"))
    assert store.load("resp_0001", other) is None
    assert store.delete("resp_0001", other) is False
    assert store.chain("resp_0002", other) is None
    assert ids(store.chain("resp_0002", owner)) == ["resp_0001", "resp_0002"]


def test_a_chain_stops_at_another_owners_response(store):
    store.save(response(1, owner="key-alice"))
    store.save(response(2, owner="key-bob", previous="resp_0001"))
    assert ids(store.chain("resp_0002", "key-bob")) == ["resp_0002"]


# --- Expiry ---


def test_a_response_expires_after_the_ttl(store, clock):
    store.save(response(1))
    store.save(response(2, previous="resp_0001"))
    clock.advance(TTL - 1)
    assert store.load("resp_0001", "key-alice") == response(1)
    clock.advance(1)
    assert store.load("resp_0001", "key-alice") is None
    assert store.delete("resp_0001", "key-alice") is False
    assert store.chain("resp_0002", "key-alice") is None


def held(store):
    """How many responses the backend still holds, visible or not: what purging brings down."""
    if isinstance(store, SqliteStore):
        with closing(sqlite3.connect(store.path)) as db:
            return db.execute("SELECT count(*) FROM responses").fetchone()[0]
    return len(list(store._redis.scan_iter(match=f"{store.prefix}response:*")))


def test_expired_and_deleted_responses_leave_the_storage(store, clock):
    for number in range(3):
        store.save(response(number))
    clock.advance(TTL)
    store.save(response(3))
    assert held(store) == 1
    store.delete("resp_0003", "key-alice")
    assert held(store) == 0


# --- The size bound ---


def test_over_the_size_bound_the_oldest_responses_go_first(make_store, clock):
    store = make_store(max_bytes=3 * SIZE + SIZE // 2)
    for number in range(6):
        store.save(response(number))
        clock.advance(1)
    assert kept(store, range(6)) == [3, 4, 5]


def test_a_response_larger_than_the_bound_is_kept_alone(make_store, clock):
    store = make_store(max_bytes=SIZE // 2)
    store.save(response(1))
    clock.advance(1)
    store.save(response(2))
    assert kept(store, [1, 2]) == [2]


def test_a_replaced_response_is_counted_once(make_store, clock):
    store = make_store(max_bytes=2 * SIZE + SIZE // 2)
    store.save(response(1))
    for _ in range(5):
        clock.advance(1)
        store.save(response(2))
    assert kept(store, [1, 2]) == [1, 2]


def test_a_deleted_response_gives_its_room_back(make_store, clock):
    store = make_store(max_bytes=2 * SIZE + SIZE // 2)
    store.save(response(1))
    for number in range(2, 7):
        clock.advance(1)
        store.save(response(number))
        assert store.delete(f"resp_{number:04d}", "key-alice") is True
    assert kept(store, [1]) == [1]


def test_a_lowered_bound_is_reached_a_batch_at_each_save(make_store, clock, monkeypatch):
    for module in (sqlite_store, redis_store):
        monkeypatch.setattr(module, "FORGET_BATCH", 2)
    roomy = make_store()
    for number in range(6):
        roomy.save(response(number))
        clock.advance(1)
    # The gateway restarted with a smaller RESPONSES_STORE_MAX_MB: two fit.
    tight = make_store(max_bytes=2 * SIZE)
    tight.save(response(6))
    assert kept(tight, range(7)) == [2, 3, 4, 5, 6]
    clock.advance(1)
    tight.save(response(7))
    assert kept(tight, range(8)) == [4, 5, 6, 7]


# --- Chains ---


def save_chain(store, numbers, clock=None):
    previous = None
    for number in numbers:
        store.save(response(number, previous=previous))
        previous = f"resp_{number:04d}"
        if clock is not None:
            clock.advance(1)


def test_a_chain_is_the_conversation_oldest_first(store):
    save_chain(store, [1, 2, 3])
    assert ids(store.chain("resp_0003", "key-alice")) == ["resp_0001", "resp_0002", "resp_0003"]
    assert ids(store.chain("resp_0002", "key-alice")) == ["resp_0001", "resp_0002"]
    assert store.chain("resp_0001", "key-alice") == [response(1)]


def test_a_deleted_link_ends_the_chain_there(store):
    save_chain(store, [1, 2, 3])
    store.delete("resp_0002", "key-alice")
    assert ids(store.chain("resp_0003", "key-alice")) == ["resp_0003"]
    assert ids(store.chain("resp_0001", "key-alice")) == ["resp_0001"]


def test_an_expired_link_ends_the_chain_there(store, clock):
    store.save(response(1))
    clock.advance(TTL // 2)
    store.save(response(2, previous="resp_0001"))
    store.save(response(3, previous="resp_0002"))
    clock.advance(TTL // 2)
    assert ids(store.chain("resp_0003", "key-alice")) == ["resp_0002", "resp_0003"]


def test_a_chain_keeps_its_newest_links_up_to_the_bound(store, monkeypatch):
    monkeypatch.setattr(store_base, "MAX_CHAIN", 5)
    save_chain(store, range(1, 9))
    assert ids(store.chain("resp_0008", "key-alice")) == [f"resp_{n:04d}" for n in range(4, 9)]


def test_the_chain_bound_is_a_thousand_links():
    assert store_base.MAX_CHAIN == 1000


# --- SQLite: one file, several processes ---

# Run in another process: save or load responses of one file, with the real clock.
PROCESS = """
import json, sys
from ollama_openai.response_store import SqliteStore, StoredResponse
path, action, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
store = SqliteStore(path, 3600, 10**9)
found = []
for n in range(first, first + count):
    if action == "save":
        store.save(StoredResponse(f"resp_{n}", "key-alice", None, n, [], [], {"n": n}))
    elif store.load(f"resp_{n}", "key-alice") is not None:
        found.append(n)
print(json.dumps(found))
"""


def in_process(path, action, first, count):
    return subprocess.Popen(
        [sys.executable, "-c", PROCESS, str(path), action, str(first), str(count)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def finished(process):
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    return json.loads(output)


def stored(number):
    return StoredResponse(f"resp_{number}", "key-alice", None, number, [], [], {"n": number})


def test_two_processes_share_one_sqlite_file(tmp_path):
    path = tmp_path / "responses.sqlite3"
    store = SqliteStore(str(path), TTL, 10**9)
    store.save(stored(0))  # this process's connection is open while the other one writes
    assert finished(in_process(path, "save", 1, 20)) == []
    assert [n for n in range(21) if store.load(f"resp_{n}", "key-alice")] == list(range(21))
    for number in range(21, 41):
        store.save(stored(number))
    assert finished(in_process(path, "load", 0, 41)) == list(range(41))


def test_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "responses.sqlite3"
    writers = [in_process(path, "save", first, 300) for first in (0, 1000, 2000)]
    for writer in writers:
        finished(writer)
    with closing(sqlite3.connect(path)) as db:
        (count, sizes) = db.execute("SELECT count(*), sum(size) FROM responses").fetchone()
        totals = db.execute("SELECT total FROM stored_bytes").fetchall()
    # One running total (processes creating the schema at once seed it once), and exact.
    assert (count, totals) == (900, [(sizes,)])


def _save_in_child(store, number):
    store.save(stored(number))
    assert store._inherited, "the child used the connection it inherited"


def test_a_forked_worker_opens_its_own_connection(tmp_path):
    # As gunicorn forks workers; the child must not use the connection it inherited.
    store = SqliteStore(str(tmp_path / "responses.sqlite3"), TTL, 10**9)
    store.save(stored(1))
    child = multiprocessing.get_context("fork").Process(target=_save_in_child, args=(store, 2))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert store.load("resp_2", "key-alice") == stored(2)


def test_the_file_is_created_at_first_use_for_this_user_only(tmp_path):
    path = tmp_path / "state" / "ollama-openai" / "responses.sqlite3"
    store = open_store(Settings(responses_store_uri=f"sqlite://{path}"))
    assert isinstance(store, SqliteStore)
    assert not path.parent.exists()
    store.save(stored(1))
    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_an_unusable_sqlite_path_is_store_unavailable(tmp_path):
    (tmp_path / "not-a-directory").write_text("")
    path = tmp_path / "not-a-directory" / "responses.sqlite3"
    store = SqliteStore(str(path), TTL, 10**9)
    with pytest.raises(StoreUnavailable, match="not-a-directory"):
        store.load("resp_1", None)


def test_memory_store_is_its_own_per_store():
    settings = Settings(responses_store_uri="memory://")
    store, other = open_store(settings), open_store(settings)
    store.save(stored(1))
    assert store.load("resp_1", "key-alice") == stored(1)
    assert other.load("resp_1", "key-alice") is None


# --- Redis ---


def test_open_store_picks_redis_for_a_redis_uri(redis_url):
    store = open_store(Settings(responses_store_uri=redis_url, responses_store_max_mb=2))
    assert isinstance(store, RedisStore)
    assert (store.prefix, store.ttl, store.max_bytes) == ("ollama-openai:", 30 * 86400, 2 << 20)


def test_callers_beyond_the_redis_connections_wait_for_one(redis_url, monkeypatch):
    # A gevent worker serves thousands of requests at once; redis-py's default pool would fail
    # the caller after its last connection instead of letting it wait.
    monkeypatch.setattr(redis_store, "MAX_CONNECTIONS", 2)
    store = RedisStore(redis_url, TTL, 10**9, prefix=f"test-{uuid.uuid4().hex}:")
    store.save(stored(1))
    start = threading.Barrier(16)

    def load_often():
        start.wait()
        return [store.load("resp_1", "key-alice") for _ in range(20)]

    with ThreadPoolExecutor(16) as callers:
        results = [call.result() for call in [callers.submit(load_often) for _ in range(16)]]
    assert all(loaded == stored(1) for result in results for loaded in result)


@pytest.fixture
def refusing_port():
    """A loopback port bound but not listening: connections are refused, and no other server
    on this machine can take the port meanwhile."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


@pytest.mark.parametrize("call", ["save", "load", "delete", "chain"])
def test_redis_down_is_store_unavailable_without_the_password(call, refusing_port):
    store = RedisStore(f"redis://:hunter2@127.0.0.1:{refusing_port}/0", TTL, 10**9)
    arguments = (stored(1),) if call == "save" else ("resp_1", "key-alice")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        getattr(store, call)(*arguments)
    assert time.monotonic() - started < 5
    assert "Redis at 127.0.0.1" in str(caught.value)
    assert "hunter2" not in str(caught.value) + repr(store)


# --- Settings ---


def test_store_settings_default_to_a_sqlite_file_in_the_users_state_directory():
    settings = Settings.from_env({})
    home = Path.home()
    assert settings.responses_store_uri == (
        f"sqlite://{home}/.local/state/ollama-openai/responses.sqlite3"
    )
    assert (settings.responses_ttl, settings.responses_store_max_mb) == (30 * 86400, 1024)


@pytest.mark.parametrize(
    ("state_home", "directory"),
    [("/var/lib/state", "/var/lib/state"), ("relative/state", f"{Path.home()}/.local/state")],
)
def test_the_default_file_follows_xdg_state_home(state_home, directory):
    settings = Settings.from_env({"XDG_STATE_HOME": state_home})
    assert settings.responses_store_uri == f"sqlite://{directory}/ollama-openai/responses.sqlite3"


def test_store_settings_are_read_from_the_environment():
    settings = Settings.from_env(
        {
            "RESPONSES_STORE_URI": "redis://:hunter2@redis:6379/2",
            "RESPONSES_TTL": "600",
            "RESPONSES_STORE_MAX_MB": "64",
        }
    )
    assert settings.responses_store_uri == "redis://:hunter2@redis:6379/2"
    assert (settings.responses_ttl, settings.responses_store_max_mb) == (600, 64)
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RESPONSES_STORE_URI", "/var/lib/responses.sqlite3"),
        ("RESPONSES_STORE_URI", "sqlite://relative.sqlite3"),
        ("RESPONSES_STORE_URI", "sqlite:///var/lib/"),
        ("RESPONSES_STORE_URI", "postgres://db/responses"),
        ("RESPONSES_STORE_URI", "memory://somewhere"),
        ("RESPONSES_STORE_URI", "redis://:hunter2@"),
        ("RESPONSES_STORE_URI", "redis://:hunter2@redis:port/0"),
        ("RESPONSES_STORE_URI", "redis://:hunter2@redis:6379/zero"),
        ("RESPONSES_STORE_URI", "redis://:hunter2@redis:6379/0?ssl=yes"),
        ("RESPONSES_TTL", "0"),
        ("RESPONSES_TTL", "30d"),
        ("RESPONSES_STORE_MAX_MB", "-1"),
    ],
)
def test_a_bad_store_setting_names_the_variable_not_the_password(name, value):
    with pytest.raises(ConfigError, match=name) as caught:
        Settings.from_env({name: value})
    assert "hunter2" not in str(caught.value)
    assert "\n" not in str(caught.value)
