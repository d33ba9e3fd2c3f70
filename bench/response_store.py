"""Benchmark: what one save, load and chain of the response store costs, per backend.

Run with ``make bench-store`` (or ``python -m bench.response_store --count 10000``). Saves and
then loads ``--count`` responses of about 5 KiB each, in one process on loopback: a SQLite file
in a temporary directory, ``memory://``, and a redis-server started for the run. SQLite's times
are how long a gevent worker's loop is blocked; Redis' are mostly the round trip.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from ollama_openai.response_store import (
    RedisStore,
    ResponseStore,
    SqliteStore,
    StoredResponse,
)
from ollama_openai.response_store.base import to_json
from ollama_standin import RedisProcess

TTL = 30 * 86400
MAX_BYTES = 1024 * 1024 * 1024
CHAIN = 100


def typical_response(number: int, previous: str | None = None) -> StoredResponse:
    """About 5 KiB of JSON: a question, a 2 KiB answer, and the response object around it."""
    response_id = f"resp_{number:032x}"
    answer = "The sky is blue because air scatters short wavelengths more than long ones. " * 26
    message = {
        "id": f"msg_{number:032x}",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": answer, "annotations": []}],
    }
    return StoredResponse(
        id=response_id,
        owner="key-0123456789abcdef",
        previous_id=previous,
        created_at=1_760_000_000 + number,
        input_items=[
            {
                "id": f"msg_in_{number:032x}",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Why is the sky blue? " * 20}],
            }
        ],
        output_items=[message],
        response={
            "id": response_id,
            "object": "response",
            "created_at": 1_760_000_000 + number,
            "status": "completed",
            "model": "llama3.2",
            "output": [message],
            "usage": {"input_tokens": 120, "output_tokens": 480, "total_tokens": 600},
            "previous_response_id": previous,
            "store": True,
        },
        server="http://127.0.0.1:11434",
    )


def timed(calls: list, repeat: int = 1) -> list[float]:
    """Microseconds each call took."""
    times = []
    for call in calls:
        for _ in range(repeat):
            started = time.perf_counter()
            call()
            times.append((time.perf_counter() - started) * 1e6)
    return times


def measure(name: str, store: ResponseStore, count: int) -> None:
    responses = [typical_response(number) for number in range(count)]
    saves = timed([lambda stored=stored: store.save(stored) for stored in responses])
    loads = timed(
        [lambda stored=stored: store.load(stored.id, stored.owner) for stored in responses]
    )
    previous = None
    for number in range(count, count + CHAIN):
        store.save(typical_response(number, previous))
        previous = f"resp_{number:032x}"
    assert previous is not None
    chains = timed([lambda: store.chain(previous, "key-0123456789abcdef")], repeat=20)
    for label, times in (("save", saves), ("load", loads), (f"chain of {CHAIN}", chains)):
        print(
            f"{name:8} {label:13} mean {statistics.mean(times):8.0f} µs"
            f"   p50 {statistics.median(times):8.0f} µs"
            f"   p99 {statistics.quantiles(times, n=100)[98]:8.0f} µs"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="responses saved and loaded")
    options = parser.parse_args()
    size = len(to_json(typical_response(0)).encode("utf-8"))
    print(f"{options.count} saves then loads of a {size}-byte response; chains of {CHAIN} links")
    with tempfile.TemporaryDirectory(prefix="bench-store-") as directory:
        measure(
            "sqlite", SqliteStore(f"{directory}/responses.sqlite3", TTL, MAX_BYTES), options.count
        )
        measure("memory", SqliteStore(":memory:", TTL, MAX_BYTES), options.count)
        redis = RedisProcess(Path(directory))
        try:
            measure("redis", RedisStore(redis.url, TTL, MAX_BYTES), options.count)
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
