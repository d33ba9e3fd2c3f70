"""Benchmark: the gateway under gunicorn + gevent against a fast Ollama stand-in.

Run with ``make bench``. Prints, side by side with calling the stand-in directly:
non-streamed chat (requests/s, p50/p99, added latency), streamed chat (chunks/s relayed,
time to first byte), slow concurrent streams (held intact, memory per stream) and the time
from a client hanging up to the gateway closing its upstream connection.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

from bench.loadgen import (  # noqa: E402
    Connection,
    get_json,
    ndjson_text,
    post_json,
    read_stream,
    sse_text,
)
from ollama_standin import ROOT, GatewayProcess, free_port, rss_kib, wait_for_port  # noqa: E402

MESSAGES = [{"role": "user", "content": "Why is the sky blue?"}]
GATEWAY_PATH = "/v1/chat/completions"
DIRECT_PATH = "/api/chat"


class Standin:
    """The Ollama stand-in in its own process, under gevent, controlled over HTTP."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ollama_standin", "--port", str(self.port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        self.url = f"http://127.0.0.1:{self.port}"

    def configure(self, **knobs) -> None:
        post_json(self.port, "/_standin/reset", {})
        if knobs:
            post_json(self.port, "/_standin/config", knobs)

    def state(self) -> dict:
        return get_json(self.port, "/_standin/state")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def body(stream: bool, **extra) -> bytes:
    return json.dumps(
        {"model": "llama3.2", "messages": MESSAGES, "stream": stream, **extra}
    ).encode()


# --- non-streamed -------------------------------------------------------------------------


def closed_loop(
    port: int, path: str, concurrency: int, seconds: float
) -> tuple[float, list[float]]:
    """``concurrency`` clients sending requests back to back; requests/s and latencies (s)."""
    latencies: list[float] = []
    payload = body(False)
    deadline = time.monotonic() + seconds

    def client() -> None:
        conn = Connection(port)
        while time.monotonic() < deadline:
            started = time.monotonic()
            status, _ = conn.request("POST", path, payload)
            if status != 200:
                raise RuntimeError(f"HTTP {status}")
            latencies.append(time.monotonic() - started)
        conn.close()

    started = time.monotonic()
    gevent.joinall([gevent.spawn(client) for _ in range(concurrency)], raise_error=True)
    return len(latencies) / (time.monotonic() - started), latencies


def non_streamed(standin: Standin, gateway_port: int, seconds: float) -> list[str]:
    standin.configure(reply="The sky is blue because of Rayleigh scattering of sunlight.")
    rows = []
    for port, path in ((standin.port, DIRECT_PATH), (gateway_port, GATEWAY_PATH)):
        closed_loop(port, path, 4, 0.5)  # warm up connections and code paths
    _, direct_solo = closed_loop(standin.port, DIRECT_PATH, 1, seconds)
    _, gateway_solo = closed_loop(gateway_port, GATEWAY_PATH, 1, seconds)
    added = (statistics.median(gateway_solo) - statistics.median(direct_solo)) * 1000
    rows.append(
        f"  one client: p50 direct {statistics.median(direct_solo) * 1000:.2f} ms, "
        f"via gateway {statistics.median(gateway_solo) * 1000:.2f} ms -> added p50 {added:.2f} ms"
        f" (target <= 2 ms)"
    )
    for concurrency in (20, 100):
        figures = []
        for port, path in ((standin.port, DIRECT_PATH), (gateway_port, GATEWAY_PATH)):
            rate, latencies = closed_loop(port, path, concurrency, seconds)
            figures.append((rate, statistics.median(latencies), percentile(latencies, 0.99)))
        (d_rate, d_p50, d_p99), (g_rate, g_p50, g_p99) = figures
        rows.append(
            f"  {concurrency:>3} clients: direct {d_rate:7.0f} req/s p50 {d_p50 * 1000:6.2f} ms "
            f"p99 {d_p99 * 1000:6.2f} ms | gateway {g_rate:7.0f} req/s p50 {g_p50 * 1000:6.2f} ms "
            f"p99 {g_p99 * 1000:6.2f} ms | added p50 {(g_p50 - d_p50) * 1000:6.2f} ms"
        )
    return rows


# --- streamed -----------------------------------------------------------------------------


def stream_throughput(port: int, path: str, concurrency: int, gateway: bool, expected: str):
    """Chunks/s over ``concurrency`` simultaneous fast streams, first-byte times, all intact?"""
    separator, text_of = (b"\n\n", sse_text) if gateway else (b"\n", ndjson_text)
    payload = json.loads(body(True))
    results = []

    def client() -> None:
        conn = Connection(port)
        results.append(read_stream(conn, path, payload, separator, text_of))
        conn.close()

    started = time.monotonic()
    gevent.joinall([gevent.spawn(client) for _ in range(concurrency)], raise_error=True)
    elapsed = time.monotonic() - started
    events = sum(result.events for result in results)
    intact = sum(result.text == expected and result.done for result in results)
    return events / elapsed, [r.first_byte for r in results], intact


def streamed(standin: Standin, gateway_port: int, tokens: int) -> list[str]:
    reply = " ".join(f"w{i}" for i in range(tokens))
    standin.configure(reply=reply)
    rows = []
    for concurrency in (1, 200):
        figures = []
        for port, path, is_gateway in (
            (standin.port, DIRECT_PATH, False),
            (gateway_port, GATEWAY_PATH, True),
        ):
            stream_throughput(port, path, min(concurrency, 4), is_gateway, reply)  # warm up
            figures.append(stream_throughput(port, path, concurrency, is_gateway, reply))
        (d_rate, _, _), (g_rate, _, g_ok) = figures
        rows.append(
            f"  {concurrency:>3} streams x {tokens} tokens: direct {d_rate:8.0f} chunks/s | "
            f"gateway {g_rate:8.0f} chunks/s relayed, {g_ok}/{concurrency} intact"
            f" (target >= 20,000 chunks/s)"
        )
    ttfb_direct, ttfb_gateway = [], []
    for _ in range(30):
        ttfb_direct += stream_throughput(standin.port, DIRECT_PATH, 1, False, reply)[1]
        ttfb_gateway += stream_throughput(gateway_port, GATEWAY_PATH, 1, True, reply)[1]
    added = (statistics.median(ttfb_gateway) - statistics.median(ttfb_direct)) * 1000
    rows.append(
        f"  time to first token, one stream: direct {statistics.median(ttfb_direct) * 1000:.2f} ms,"
        f" gateway {statistics.median(ttfb_gateway) * 1000:.2f} ms -> added {added:.2f} ms"
    )
    return rows


# --- slow streams and memory --------------------------------------------------------------


def slow_streams(
    standin: Standin, gateway: GatewayProcess, count: int, tokens: int, interval: float
) -> tuple[str, int, int]:
    """``count`` streams held open at once; memory is read when the most were open."""
    reply = " ".join(f"t{i}" for i in range(tokens))
    standin.configure(reply=reply, token_interval=interval)
    pid = gateway.worker_pid()
    baseline = rss_kib(pid)
    samples = []  # (open streams, worker RSS in KiB)
    results = []
    payload = json.loads(body(True))

    def client() -> None:
        try:
            conn = Connection(gateway.port)
            results.append(read_stream(conn, GATEWAY_PATH, payload, b"\n\n", sse_text))
            conn.close()
        except Exception as error:
            results.append(error)

    greenlets = []
    for index in range(count):
        greenlets.append(gevent.spawn(client))
        if index % 100 == 99:
            gevent.sleep(0.1)  # ramp up at 1,000 new streams/s
    while not all(g.ready() for g in greenlets):
        samples.append((standin.state()["active_streams"], rss_kib(pid)))
        gevent.sleep(0.25)
    intact = sum(not isinstance(r, Exception) and r.text == reply and r.done for r in results)
    failures: dict[str, int] = {}
    for result in results:
        if isinstance(result, Exception):
            kind = repr(result)[:80]
        elif result.error or not result.done:
            kind = str(result.error)[:80]
        elif result.text != reply:
            kind = "text differs"
        else:
            continue
        failures[kind] = failures.get(kind, 0) + 1
    peak_open, rss_then = max(samples)
    per_stream = (rss_then - baseline) / max(peak_open, 1)
    row = (
        f"  {count:>5} streams of {tokens} tokens, one every {interval:g} s: "
        f"{intact}/{count} intact"
        f"{' ' + str(failures) if failures else ''}, {peak_open} open at once; worker RSS "
        f"{baseline / 1024:.0f} -> {rss_then / 1024:.0f} MiB = {per_stream:.1f} KiB per open "
        f"stream (target < 50 KiB)"
    )
    return row, peak_open, rss_then


# --- disconnects --------------------------------------------------------------------------


def disconnect_latency(standin: Standin, gateway_port: int, tries: int) -> str:
    standin.configure(reply=" ".join(["word"] * 500), token_interval=0.5)
    payload = json.loads(body(True))
    delays = []
    for _ in range(tries):
        before = standin.state()["disconnects"]
        conn = Connection(gateway_port)
        read_stream(conn, GATEWAY_PATH, payload, b"\n\n", sse_text, stop_after_events=1)
        conn.close()
        closed_at = time.monotonic()
        deadline = closed_at + 5
        while time.monotonic() < deadline:
            state = standin.state()
            if state["disconnects"] > before:
                delays.append(state["last_disconnect"] - closed_at)
                break
            gevent.sleep(0.005)
        else:
            delays.append(float("inf"))
    return (
        f"  client hang-up -> upstream closed: median {statistics.median(delays) * 1000:.1f} ms,"
        f" max {max(delays) * 1000:.1f} ms over {tries} streams (target < 1 s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each load run")
    parser.add_argument("--tokens", type=int, default=2000, help="tokens per fast stream")
    parser.add_argument("--slow", default="1000,5000", help="counts of slow concurrent streams")
    parser.add_argument("--slow-tokens", type=int, default=40, help="tokens per slow stream")
    parser.add_argument(
        "--slow-interval", type=float, default=0.5, help="seconds between a slow stream's tokens"
    )
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    standin = Standin()
    log = Path(tempfile.mkdtemp(prefix="bench-")) / "gateway.log"
    gateway = GatewayProcess(
        standin.url,
        log,
        WEB_CONCURRENCY="1",
        WORKER_CONNECTIONS="12000",
        # The stand-in answers any number at once: the gateway must not queue them.
        SERVER_SLOTS="100000",
        DEFAULT_MAX_TOKENS="",
        LOG_LEVEL="WARNING",
    )
    print(
        f"ollama-openai benchmark: 1 gunicorn gevent worker, {os.cpu_count()} cores, "
        f"Ollama stand-in under gevent; gateway log {log}"
    )
    try:
        print("Non-streamed chat")
        for row in non_streamed(standin, gateway.port, args.seconds):
            print(row, flush=True)
        print("Streamed chat")
        for row in streamed(standin, gateway.port, args.tokens):
            print(row, flush=True)
        print("Slow concurrent streams")
        peaks = []
        for count in (int(n) for n in args.slow.split(",") if n):
            row, peak_open, rss_then = slow_streams(
                standin, gateway, count, args.slow_tokens, args.slow_interval
            )
            peaks.append((peak_open, rss_then))
            print(row, flush=True)
        if len(peaks) >= 2 and peaks[-1][0] > peaks[0][0]:
            (few, rss_few), (many, rss_many) = peaks[0], peaks[-1]
            print(
                f"  marginal memory from {few} to {many} open streams: "
                f"{(rss_many - rss_few) / (many - few):.1f} KiB per stream",
                flush=True,
            )
        print("Disconnects")
        print(disconnect_latency(standin, gateway.port, 10), flush=True)
    finally:
        gateway.stop()
        standin.stop()


if __name__ == "__main__":
    main()
