"""Benchmark: what the usage ledger costs a request, per backend, and the key check.

Run with ``make bench-store`` (or ``python -m bench.usage_store --count 10000``). In one
process on loopback: ``--count`` records (the close of an answer) spread over 50 keys and 5
models, budget reads (a month of one key's days, before a request with a budget), a slot taken
and given back (a key with ``max_concurrent``), in a SQLite file, ``memory://`` and a
redis-server started for the run; then a key found among 1,000 (every request, keys on).
SQLite's times are how long a gevent worker's loop is blocked; Redis' are mostly round trips.
"""

import argparse
import hashlib
import statistics
import tempfile
from datetime import date
from pathlib import Path

from bench.response_store import timed
from ollama_openai.keyring import ApiKey, KeyRing
from ollama_openai.usage import RedisUsage, SqliteUsage, Usage, UsageStore
from ollama_standin import RedisProcess

TODAY = date.today().isoformat()
MONTH = TODAY[:8] + "01"


def report(name: str, label: str, times: list[float]) -> None:
    print(
        f"{name:8} {label:20} mean {statistics.mean(times):8.1f} µs"
        f"   p50 {statistics.median(times):8.1f} µs"
        f"   p99 {statistics.quantiles(times, n=100)[98]:8.1f} µs"
    )


def measure(name: str, store: UsageStore, count: int) -> None:
    records = [
        Usage(TODAY, f"key{number % 50}", f"model{number % 5}", 1, 120, 480)
        for number in range(count)
    ]
    report(name, "record", timed([lambda usage=usage: store.record(usage) for usage in records]))
    reads = [lambda n=n: store.spent(f"key{n % 50}", MONTH, TODAY) for n in range(count // 10)]
    report(name, "budget read (month)", timed(reads))

    def slot(number: int) -> None:
        store.acquire("key0", f"lease{number}", 4, 60)
        store.release("key0", f"lease{number}")

    report(name, "slot taken, given", timed([lambda n=n: slot(n) for n in range(count // 10)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="records written")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-usage-") as directory:
        measure("sqlite", SqliteUsage(f"{directory}/usage.sqlite3", 400), options.count)
        measure("memory", SqliteUsage(":memory:", 400), options.count)
        redis = RedisProcess(Path(directory))
        try:
            measure("redis", RedisUsage(redis.url, 400), options.count)
        finally:
            redis.stop()
    ring = KeyRing(
        tuple(ApiKey(f"key{n}", hashlib.sha256(f"sk-{n}".encode()).digest()) for n in range(1000))
    )
    report("keys", "find among 1,000", timed([lambda: ring.find(b"sk-999")], repeat=2000))


if __name__ == "__main__":
    main()
