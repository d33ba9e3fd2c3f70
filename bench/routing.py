"""Benchmark of issue 13: the gateway's warm routing against plain least-in-flight.

Run with ``make bench`` (after ``bench.run``) or ``python -m bench.routing``. Two Ollama
stand-ins play two GPUs: each lists two models but holds one loaded at a time, runs one call
at once, and takes a while to load the other. The same seeded workload of streamed chats (two
models mixed, some conversations continued under their ``prompt_cache_key`` or ``user``) goes
through a gateway with ``ROUTING=warm``, then through one with ``ROUTING=least-in-flight``,
each against freshly reset stand-ins. Prints, per routing: total time, requests/s, cold loads
(the stand-ins' own count), p50/p95 time to first token, errors, and the turns that went back
to their conversation's server; then the ratios. The workload is deterministic, the timings not.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402

from bench.loadgen import Connection, sse_text  # noqa: E402
from bench.run import GATEWAY_PATH, Standin, percentile  # noqa: E402
from ollama_standin import GatewayProcess  # noqa: E402

# The two models every stand-in lists (its default models), and the share of calls of the first.
MODELS = ("llama3.2", "qwen3:8b")
ROUTINGS = ("warm", "least-in-flight")
# Every answer: 20 tokens, one every TOKEN_INTERVAL s, so a call holds its slot ~0.1 s; qwen3
# thinks by default, and its thinking is made empty so that both models answer alike.
REPLY = " ".join(f"w{i}" for i in range(20))
TOKEN_INTERVAL = 0.005
# Seconds a call may wait in the gateway's queue: a stuck call fails the run instead of hanging.
QUEUE_TIMEOUT = "30"


@dataclass(frozen=True)
class Call:
    """One streamed chat of the workload; ``conversation`` is None for a one-off question."""

    model: str
    messages: list[dict[str, str]]
    conversation: int | None
    # "prompt_cache_key" or "user": the field that names the conversation.
    key_field: str | None = None

    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "messages": self.messages, "stream": True}
        if self.conversation is not None and self.key_field is not None:
            payload[self.key_field] = f"conversation-{self.conversation}"
        return payload


@dataclass
class Outcome:
    """What one call got back through the gateway."""

    call: Call
    status: int = 0
    first_token: float | None = None  # seconds from sending to the first content event
    done: bool = False
    error: str | None = None
    server: str | None = None  # x-ollama-server

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.done and self.error is None


def workload(seed: int, count: int, first_share: float, continued: float) -> list[Call]:
    """``count`` calls, the same for a given seed: a share ``continued`` of them are the next
    turn of an earlier conversation (same model, same key, its history resent)."""
    rng = random.Random(seed)
    calls: list[Call] = []
    # Per conversation: its model, key field and messages so far.
    conversations: list[tuple[str, str, list[dict[str, str]]]] = []
    for index in range(count):
        if conversations and rng.random() < continued:
            number = rng.randrange(len(conversations))
            model, key_field, history = conversations[number]
            turn = sum(m["role"] == "user" for m in history) + 1
            history = [
                *history,
                {"role": "assistant", "content": REPLY},
                {"role": "user", "content": f"Go on with point {turn}."},
            ]
            conversations[number] = (model, key_field, history)
            calls.append(Call(model, history, number, key_field))
            continue
        model = MODELS[0] if rng.random() < first_share else MODELS[1]
        opening = [{"role": "user", "content": f"Question {index}: why is the sky blue?"}]
        if rng.random() < 0.5:
            calls.append(Call(model, opening, None))
        else:
            key_field = ("prompt_cache_key", "user")[len(conversations) % 2]
            calls.append(Call(model, opening, len(conversations), key_field))
            conversations.append((model, key_field, opening))
    return calls


def stream_chat(conn: Connection, call: Call) -> Outcome:
    """Send one streamed chat and read its SSE events to the end."""
    outcome = Outcome(call)
    started = time.monotonic()
    conn.send("POST", GATEWAY_PATH, json.dumps(call.payload()).encode())
    outcome.status, headers = conn.read_head()
    outcome.server = headers.get("x-ollama-server")
    pending = b""
    for data in conn.pieces(headers):
        if outcome.status != 200:
            continue
        pending += data
        *events, pending = pending.split(b"\n\n")
        for event in events:
            if event == b"data: [DONE]":
                outcome.done = True
            elif event.startswith(b'data: {"error"'):
                outcome.error = event.decode()[:200]
            elif sse_text(event) and outcome.first_token is None:
                outcome.first_token = time.monotonic() - started
    return outcome


@dataclass
class Run:
    """One routing's run of the workload."""

    routing: str
    seconds: float
    outcomes: list[Outcome]
    loads: int
    decisions: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(not o.ok for o in self.outcomes)

    def first_tokens(self) -> list[float]:
        return [o.first_token for o in self.outcomes if o.ok and o.first_token is not None]

    def same_server(self) -> tuple[int, int]:
        """Next turns answered by the server that answered their conversation's turn before
        (in workload order), and how many next turns there were."""
        last: dict[int, str | None] = {}
        same = turns = 0
        for outcome in self.outcomes:
            number = outcome.call.conversation
            if number is None:
                continue
            if number in last and outcome.server is not None:
                turns += 1
                same += outcome.server == last[number]
            last[number] = outcome.server
        return same, turns


def routing_decisions(port: int) -> dict[str, int]:
    """The gateway's routing decisions by reason, summed over servers (its /metrics)."""
    conn = Connection(port)
    try:
        _, text = conn.request("GET", "/metrics")
    finally:
        conn.close()
    totals: dict[str, int] = {}
    pattern = r"^ollama_openai_routing_decisions_total\{([^}]*)\} ([0-9.e+]+)$"
    for labels, value in re.findall(pattern, text.decode(), re.MULTILINE):
        reason = re.search(r'reason="([^"]*)"', labels)
        if reason:
            totals[reason.group(1)] = totals.get(reason.group(1), 0) + int(float(value))
    return totals


def run_routing(
    routing: str, standins: list[Standin], calls: list[Call], clients: int, load_seconds: float
) -> Run:
    """The workload through a fresh gateway with ``ROUTING=routing``, from ``clients`` clients
    taking the calls in order, against stand-ins reset to nothing loaded."""
    for standin in standins:
        standin.configure(
            num_parallel=1,
            max_loaded_models=1,
            load_seconds=load_seconds,
            token_interval=TOKEN_INTERVAL,
            reply=REPLY,
            thinking="",
        )
        state = standin.state()
        if state["loaded"] or state["loads"] or state["running"]:
            raise RuntimeError(f"the stand-in was not reset: {state}")
    log = Path(tempfile.mkdtemp(prefix="bench-routing-")) / f"gateway-{routing}.log"
    gateway = GatewayProcess(
        ",".join(s.url for s in standins),
        log,
        WEB_CONCURRENCY="1",
        ROUTING=routing,
        SERVER_SLOTS="1",
        MODEL_REFRESH_INTERVAL="0.5",
        QUEUE_TIMEOUT=QUEUE_TIMEOUT,
        DEFAULT_MAX_TOKENS="",
        LOG_LEVEL="WARNING",
    )
    try:
        # The code paths warm, the models listed; nothing is loaded by this.
        warm_up = Connection(gateway.port)
        warm_up.request("GET", "/v1/models")
        warm_up.close()
        pending = iter(enumerate(calls))
        outcomes: list[Outcome | None] = [None] * len(calls)

        def client() -> None:
            conn = Connection(gateway.port)
            for index, call in pending:
                outcomes[index] = stream_chat(conn, call)
            conn.close()

        started = time.monotonic()
        gevent.joinall([gevent.spawn(client) for _ in range(clients)], raise_error=True)
        seconds = time.monotonic() - started
        decisions = routing_decisions(gateway.port) if routing == "warm" else {}
    finally:
        gateway.stop()
    loads = sum(standin.state()["loads"] for standin in standins)
    done = [o for o in outcomes if o is not None]
    return Run(routing, seconds, done, loads, decisions)


def table(runs: list[Run]) -> list[str]:
    rows = [
        f"  {'routing':<16} {'total s':>8} {'req/s':>7} {'cold loads':>11} "
        f"{'TTFT p50 ms':>12} {'TTFT p95 ms':>12} {'errors':>7} {'same server':>12}"
    ]
    for run in runs:
        ttft = run.first_tokens() or [float("nan")]
        same, turns = run.same_server()
        rows.append(
            f"  {run.routing:<16} {run.seconds:8.2f} {len(run.outcomes) / run.seconds:7.1f} "
            f"{run.loads:11d} {statistics.median(ttft) * 1000:12.0f} "
            f"{percentile(ttft, 0.95) * 1000:12.0f} {run.errors:7d} {f'{same}/{turns}':>12}"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=120, help="calls per routing")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--share", type=float, default=0.6, help=f"share of {MODELS[0]}")
    parser.add_argument("--continued", type=float, default=0.4, help="share of next turns")
    parser.add_argument("--load-seconds", type=float, default=0.5, help="time to load a model")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    calls = workload(args.seed, args.requests, args.share, args.continued)
    first = sum(c.model == MODELS[0] for c in calls)
    turns = sum(c.conversation is not None and len(c.messages) > 1 for c in calls)
    print(
        f"ollama-openai routing benchmark: 2 Ollama stand-ins (1 slot, 1 model loaded at a time, "
        f"{args.load_seconds:g} s to load one), 1 gunicorn gevent worker, {os.cpu_count()} cores"
    )
    print(
        f"Workload (seed {args.seed}): {len(calls)} streamed chats of {len(REPLY.split())} tokens"
        f" from {args.clients} clients, {MODELS[0]} {first} / {MODELS[1]} {len(calls) - first},"
        f" {turns} of them next turns of a conversation"
    )
    standins = [Standin(), Standin()]
    try:
        runs = []
        for routing in ROUTINGS:
            runs.append(run_routing(routing, standins, calls, args.clients, args.load_seconds))
            print(f"  ran ROUTING={routing}", flush=True)
    finally:
        for standin in standins:
            standin.stop()
    print("Routing")
    for row in table(runs):
        print(row)
    warm, plain = runs
    if warm.decisions:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(warm.decisions.items()))
        print(f"  warm routing's decisions: {reasons}")
    warm_p95 = percentile(warm.first_tokens() or [float("nan")], 0.95)
    plain_p95 = percentile(plain.first_tokens() or [float("nan")], 0.95)
    print(
        f"  least-in-flight / warm: total time {plain.seconds / warm.seconds:.2f}x, "
        f"cold loads {plain.loads} vs {warm.loads}, TTFT p95 {plain_p95 / warm_p95:.2f}x"
    )
    if warm.loads >= plain.loads:
        print(
            f"  warm routing did not save cold loads: {warm.decisions.get('cold', 0)} calls sent"
            f" to a server to be loaded there, where one per model ({len(MODELS)}) would do"
        )
    incomplete = [r.routing for r in runs if len(r.outcomes) != len(calls) or r.errors]
    if incomplete:
        raise SystemExit(f"not every call succeeded with ROUTING={', '.join(incomplete)}")


if __name__ == "__main__":
    main()
