"""Benchmark: the gateway under gunicorn + gevent against a fast Ollama stand-in.

Run with ``make bench`` (``BEFORE=DIR`` adds another checkout, say ``git worktree add DIR
main``, measured in the same run). Prints one table, a column per target: the stand-in called
directly, and each gateway with keys, limits, access log and metrics off and on. Figures:
non-streamed chat (requests/s, p50, added latency), streamed chat (chunks/s relayed, time to
first token), slow concurrent streams (held intact, memory per stream) and the time from a
client hanging up to the gateway closing its upstream connection. Targets alternate within
each figure, so that noise from elsewhere on the machine falls on all of them.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from itertools import chain  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

from bench.loadgen import (  # noqa: E402
    Connection,
    StreamResult,
    get_json,
    ndjson_text,
    post_json,
    read_stream,
    sse_text,
)
from ollama_standin import ROOT, GatewayProcess, rss_kib  # noqa: E402
from ollama_standin.processes import StandinProcess  # noqa: E402

MESSAGES = [{"role": "user", "content": "Why is the sky blue?"}]
GATEWAY_PATH = "/v1/chat/completions"
DIRECT_PATH = "/api/chat"


class Standin(StandinProcess):
    """The Ollama stand-in in its own process, under gevent, controlled over HTTP."""

    def configure(self, **knobs) -> None:
        post_json(self.port, "/_standin/reset", {})
        if knobs:
            post_json(self.port, "/_standin/config", knobs)

    def state(self) -> dict:
        return get_json(self.port, "/_standin/state")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def body(stream: bool, **extra) -> bytes:
    return json.dumps(
        {"model": "llama3.2", "messages": MESSAGES, "stream": stream, **extra}
    ).encode()


@dataclass
class Row:
    """One figure, one column per target (None where it does not apply)."""

    name: str
    values: list
    form: str

    def cells(self) -> list[str]:
        return ["-" if v is None else self.form.format(v) for v in self.values]


@dataclass
class Target:
    """Where a load is sent: the stand-in itself, or a gateway in front of it."""

    label: str
    port: int
    path: str
    gateway: GatewayProcess | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def connect(self) -> Connection:
        return Connection(self.port, self.headers)

    def read_stream(self, conn: Connection, payload: dict) -> StreamResult:
        """A streamed answer read event by event: SSE from a gateway, NDJSON from Ollama."""
        if self.gateway is None:
            return read_stream(conn, self.path, payload, b"\n", ndjson_text)
        return read_stream(conn, self.path, payload, b"\n\n", sse_text)


# --- non-streamed -------------------------------------------------------------------------


@dataclass
class LoadRun:
    """What one closed-loop run measured."""

    rate: float  # requests/s
    latencies: list[float]  # seconds
    # The gateway worker's CPU (user + system) per request, in microseconds: unlike the rate,
    # it does not depend on how much of the 2 cores the load client and the stand-in take.
    cpu_us: float | None


def worker_cpu_seconds(target: Target) -> float | None:
    """The CPU time the gateway's worker has used so far; None for the stand-in."""
    if target.gateway is None:
        return None
    stat = Path(f"/proc/{target.gateway.worker_pid()}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def closed_loop(target: Target, concurrency: int, seconds: float) -> LoadRun:
    """``concurrency`` clients sending requests back to back."""
    latencies: list[float] = []
    payload = body(False)
    deadline = time.monotonic() + seconds

    def client() -> None:
        conn = target.connect()
        while time.monotonic() < deadline:
            started = time.monotonic()
            status, _ = conn.request("POST", target.path, payload)
            if status != 200:
                raise RuntimeError(f"HTTP {status} from {target.label}")
            latencies.append(time.monotonic() - started)
        conn.close()

    cpu_before = worker_cpu_seconds(target)
    started = time.monotonic()
    gevent.joinall([gevent.spawn(client) for _ in range(concurrency)], raise_error=True)
    rate = len(latencies) / (time.monotonic() - started)
    cpu_after = worker_cpu_seconds(target)
    cpu_us = None
    if cpu_before is not None and cpu_after is not None and latencies:
        cpu_us = (cpu_after - cpu_before) * 1e6 / len(latencies)
    return LoadRun(rate, latencies, cpu_us)


def stop_all(standin: Standin, targets: list[Target]) -> None:
    """Stop every gateway among ``targets``, then the stand-in."""
    for target in targets:
        if target.gateway is not None:
            target.gateway.stop()
    standin.stop()


def rounds(targets: list[Target], count: int, measure) -> list[list]:
    """``measure(target)`` for every target, in turn, ``count`` times: the targets alternate,
    so that load from elsewhere on the machine falls on all of them alike."""
    results: list[list] = [[] for _ in targets]
    for _ in range(count):
        for index, target in enumerate(targets):
            results[index].append(measure(target))
    return results


def non_streamed(
    standin: Standin, targets: list[Target], seconds: float, repeat: int
) -> Iterator[Row]:
    standin.configure(reply="The sky is blue because of Rayleigh scattering of sunlight.")
    for target in targets:
        closed_loop(target, 4, 0.5)  # warm up connections and code paths
    solo = rounds(targets, repeat, lambda t: closed_loop(t, 1, seconds).latencies)
    medians = [statistics.median(list(chain.from_iterable(runs))) * 1000 for runs in solo]
    yield Row("1 client: p50 ms", medians, "{:.2f}")
    yield Row(
        "1 client: added p50 ms (target <= 1.0)", [m - medians[0] for m in medians], "{:+.2f}"
    )
    for concurrency in (20, 100):
        runs = rounds(targets, repeat, lambda t, c=concurrency: closed_loop(t, c, seconds))
        yield Row(
            f"{concurrency} clients: requests/s",
            [statistics.median(run.rate for run in results) for results in runs],
            "{:.0f}",
        )
        p50s = [
            statistics.median(list(chain.from_iterable(run.latencies for run in r))) * 1000
            for r in runs
        ]
        yield Row(f"{concurrency} clients: p50 ms", p50s, "{:.2f}")
        yield Row(
            f"{concurrency} clients: worker CPU us per request",
            [_median_or_none([run.cpu_us for run in results]) for results in runs],
            "{:.0f}",
        )


def _median_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


# --- streamed -----------------------------------------------------------------------------


def stream_throughput(target: Target, concurrency: int, expected: str):
    """Chunks/s over ``concurrency`` simultaneous fast streams, first-byte times, all intact?"""
    payload = json.loads(body(True))
    results = []

    def client() -> None:
        conn = target.connect()
        results.append(target.read_stream(conn, payload))
        conn.close()

    started = time.monotonic()
    gevent.joinall([gevent.spawn(client) for _ in range(concurrency)], raise_error=True)
    elapsed = time.monotonic() - started
    events = sum(result.events for result in results)
    intact = sum(result.text == expected and result.done for result in results)
    return events / elapsed, [r.first_byte for r in results], intact


def streamed(standin: Standin, targets: list[Target], tokens: int, repeat: int) -> Iterator[Row]:
    reply = " ".join(f"w{i}" for i in range(tokens))
    standin.configure(reply=reply)
    for concurrency in (1, 200):
        for target in targets:
            stream_throughput(target, min(concurrency, 4), reply)  # warm up
        runs = rounds(targets, repeat, lambda t, c=concurrency: stream_throughput(t, c, reply))
        yield Row(
            f"{concurrency} x {tokens}-token streams: chunks/s (target >= 45,000)",
            [statistics.median(rate for rate, _, _ in results) for results in runs],
            "{:.0f}",
        )
        yield Row(
            f"{concurrency} x {tokens}-token streams: intact",
            [min(intact for _, _, intact in results) for results in runs],
            "{:.0f}/" + str(concurrency),
        )
    firsts = rounds(targets, 30 * repeat, lambda t: stream_throughput(t, 1, reply)[1][0])
    medians = [statistics.median(times) * 1000 for times in firsts]
    yield Row("time to first token ms", medians, "{:.2f}")
    yield Row(
        "time to first token: added ms (target <= 1.0)",
        [m - medians[0] for m in medians],
        "{:+.2f}",
    )
    # At a model's pace (a token every 20 ms) nobody floods the 2 cores while the first
    # token travels.
    paced = " ".join(f"p{i}" for i in range(5))
    standin.configure(reply=paced, token_interval=0.02)
    firsts = rounds(targets, 10 * repeat, lambda t: stream_throughput(t, 1, paced)[1][0])
    medians = [statistics.median(times) * 1000 for times in firsts]
    yield Row(
        "time to first token, a token every 20 ms: added ms",
        [m - medians[0] for m in medians],
        "{:+.2f}",
    )


# --- slow streams and memory --------------------------------------------------------------


def slow_streams(
    standin: Standin, target: Target, count: int, tokens: int, interval: float
) -> tuple[int, int, int, int]:
    """``count`` streams held open at once through one gateway: streams intact, most open at
    once, worker RSS (KiB) before and when the most were open."""
    reply = " ".join(f"t{i}" for i in range(tokens))
    standin.configure(reply=reply, token_interval=interval)
    assert target.gateway is not None
    pid = target.gateway.worker_pid()
    baseline = rss_kib(pid)
    samples = []  # (open streams, worker RSS in KiB)
    results = []
    payload = json.loads(body(True))

    def client() -> None:
        try:
            conn = target.connect()
            results.append(read_stream(conn, target.path, payload, b"\n\n", sse_text))
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
    peak_open, rss_then = max(samples)
    return intact, peak_open, baseline, rss_then


def memory(
    standin: Standin, targets: list[Target], counts: list[int], tokens: int, interval: float
) -> Iterator[Row]:
    gateways = [t for t in targets if t.gateway is not None]
    peaks: list[list[tuple[int, int]]] = [[] for _ in gateways]
    for count in counts:
        figures = [slow_streams(standin, t, count, tokens, interval) for t in gateways]
        for index, (_, peak_open, _, rss_then) in enumerate(figures):
            peaks[index].append((peak_open, rss_then))
        yield Row(f"{count} slow streams: intact", [None] + [f[0] for f in figures], "{:.0f}")
        yield Row(
            f"{count} slow streams: KiB per open stream",
            [None] + [(rss - base) / max(peak, 1) for _, peak, base, rss in figures],
            "{:.1f}",
        )
    if len(counts) >= 2:
        slopes: list[float | None] = [None]
        for (few, rss_few), (many, rss_many) in ((p[0], p[-1]) for p in peaks):
            slopes.append((rss_many - rss_few) / (many - few) if many > few else None)
        yield Row(
            f"memory slope {counts[0]}->{counts[-1]} streams: KiB/stream (target <= 40)",
            slopes,
            "{:.1f}",
        )


# --- disconnects --------------------------------------------------------------------------


def disconnect_latency(standin: Standin, target: Target, tries: int) -> float:
    """The median time (s) from a client hanging up to the gateway closing its upstream."""
    standin.configure(reply=" ".join(["word"] * 500), token_interval=0.5)
    payload = json.loads(body(True))
    delays = []
    for _ in range(tries):
        before = standin.state()["disconnects"]
        conn = target.connect()
        read_stream(conn, target.path, payload, b"\n\n", sse_text, stop_after_events=1)
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
    return statistics.median(delays)


# --- the table ----------------------------------------------------------------------------


def print_row(row: Row, width: int) -> None:
    print(f"  {row.name:<56}" + "".join(f"{c:>{width}}" for c in row.cells()), flush=True)


# Every optional feature on: keys, a rate limit that never bites, the access log, metrics.
FEATURES_ON = {
    "API_KEYS": "sk-bench",
    "RATE_LIMIT": "1000000/minute",
    "LOG_LEVEL": "INFO",
    "METRICS_ENABLED": "true",
}
FEATURES_OFF = {"LOG_LEVEL": "WARNING", "METRICS_ENABLED": "false"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each load run")
    parser.add_argument("--repeat", type=int, default=2, help="alternating rounds per figure")
    parser.add_argument("--tokens", type=int, default=2000, help="tokens per fast stream")
    parser.add_argument("--slow", default="1000,5000", help="counts of slow concurrent streams")
    parser.add_argument("--slow-tokens", type=int, default=40, help="tokens per slow stream")
    parser.add_argument(
        "--slow-interval", type=float, default=0.5, help="seconds between a slow stream's tokens"
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="another checkout of the gateway (git worktree add DIR main) to measure beside "
        "this one, in the same run",
    )
    parser.add_argument(
        "--features",
        choices=("off", "on", "both"),
        default="both",
        help="keys, limits, access log and metrics off, on, or both side by side",
    )
    parser.add_argument(
        "--skip", default="", help="sections to leave out: plain,stream,memory,disconnect"
    )
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    standin = Standin()
    logs = Path(tempfile.mkdtemp(prefix="bench-"))
    sources = [("this", ROOT)] + ([("before", args.before.resolve())] if args.before else [])
    modes = {"off": ["off"], "on": ["on"], "both": ["off", "on"]}[args.features]
    targets = [Target("direct", standin.port, DIRECT_PATH)]
    try:
        for mode in modes:
            for name, root in reversed(sources):
                label = f"{name}/{mode}"
                env = FEATURES_ON if mode == "on" else FEATURES_OFF
                gateway = GatewayProcess(
                    standin.url,
                    logs / f"{name}-{mode}.log",
                    root=root,
                    WEB_CONCURRENCY="1",
                    WORKER_CONNECTIONS="12000",
                    # The stand-in answers any number at once: the gateway must not queue them.
                    SERVER_SLOTS="100000",
                    DEFAULT_MAX_TOKENS="",
                    **env,
                )
                headers = {"Authorization": "Bearer sk-bench"} if mode == "on" else {}
                targets.append(Target(label, gateway.port, GATEWAY_PATH, gateway, headers))
        width = max(14, *(len(t.label) + 2 for t in targets))
        print(
            f"ollama-openai benchmark: 1 gunicorn gevent worker per gateway, {os.cpu_count()} "
            f"cores, Ollama stand-in under gevent; gateway logs in {logs}"
        )
        for name, root in sources:
            print(f"  {name}: {root}")
        print(f"  {'':<56}" + "".join(f"{t.label:>{width}}" for t in targets))
        sections = []
        if "plain" not in skip:
            sections.append(
                ("Non-streamed chat", non_streamed(standin, targets, args.seconds, args.repeat))
            )
        if "stream" not in skip:
            sections.append(("Streamed chat", streamed(standin, targets, args.tokens, args.repeat)))
        counts = [int(n) for n in args.slow.split(",") if n]
        if counts and "memory" not in skip:
            sections.append(
                (
                    "Slow concurrent streams (one at a time per gateway)",
                    memory(standin, targets, counts, args.slow_tokens, args.slow_interval),
                )
            )
        for title, rows in sections:
            print(title)
            for row in rows:
                print_row(row, width)
        if "disconnect" not in skip:
            print("Disconnects")
            print_row(
                Row(
                    "hang-up -> upstream closed, median ms (target < 1,000)",
                    [None] + [disconnect_latency(standin, t, 10) * 1000 for t in targets[1:]],
                    "{:.1f}",
                ),
                width,
            )
    finally:
        stop_all(standin, targets)


if __name__ == "__main__":
    main()
