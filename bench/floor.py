"""The floor of the stack: what gunicorn + Flask alone and a naive Flask + requests relay add
over calling the stand-in directly, beside the gateway (features off).

Each figure is the median over alternating rounds of one request at a time, as ``make bench``
measures the time to first token: a non-streamed answer on a new connection, the first token
of a stream paced at a token every 20 ms, and of a 2,000-token stream the stand-in writes as
fast as it can. ``echo`` (``bench.floor_apps``) answers without Ollama; ``relay`` is the
naive gateway. Run: ``python -m bench.floor [--rounds N] [--root DIR]``.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.run import (  # noqa: E402
    DIRECT_PATH,
    FEATURES_OFF,
    GATEWAY_PATH,
    Standin,
    Target,
    body,
    rounds,
    stop_all,
)
from ollama_standin import ROOT, GatewayProcess  # noqa: E402

# What each figure asks of the stand-in, and whether it is read as a stream.
FIGURES = {
    "answer, new connection: ms": ({"reply": "The sky is blue."}, False),
    "first token, a token every 20 ms: ms": ({"reply": "p0 p1 p2", "token_interval": 0.02}, True),
    "first token, flooding stand-in: ms": (
        {"reply": " ".join(f"w{i}" for i in range(2000))},
        True,
    ),
}


def measure(target: Target, stream: bool) -> float:
    """Milliseconds to the whole answer, or to the first token of a stream."""
    conn = target.connect()
    try:
        started = time.monotonic()
        if not stream:
            status, _ = conn.request("POST", target.path, body(False))
            if status != 200:
                raise RuntimeError(f"HTTP {status} from {target.label}")
            return (time.monotonic() - started) * 1000
        result = target.read_stream(conn, json.loads(body(True)))
        if not result.done or result.first_byte is None:
            raise RuntimeError(f"{target.label}: the stream did not end well ({result.error})")
        return result.first_byte * 1000
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100, help="alternating rounds per figure")
    parser.add_argument("--root", type=Path, default=ROOT, help="the gateway's checkout")
    options = parser.parse_args()

    standin = Standin()
    logs = Path(tempfile.mkdtemp())
    servers = {
        "echo": ("bench.floor_apps:echo", ROOT),
        "relay": ("bench.floor_apps:relay", ROOT),
        "gateway": ("wsgi:app", options.root),
    }
    targets = [Target("direct", standin.port, DIRECT_PATH)]
    try:
        for label, (app, root) in servers.items():
            command = ("-m", "gunicorn", "-c", "gunicorn.conf.py", app)
            process = GatewayProcess(
                standin.url,
                logs / f"{label}.log",
                command=command,
                root=root,
                WORKER_CONNECTIONS="1000",
                SERVER_SLOTS="100000",
                DEFAULT_MAX_TOKENS="",
                **FEATURES_OFF,
            )
            targets.append(Target(label, process.port, GATEWAY_PATH, process))
        print(f"{'median ms (added over direct)':40}" + "".join(f"{t.label:>16}" for t in targets))
        for figure, (knobs, stream) in FIGURES.items():
            standin.configure(**knobs)
            for target in targets:
                measure(target, stream)  # warm up
            times = rounds(targets, options.rounds, lambda t, s=stream: measure(t, s))
            medians = [statistics.median(values) for values in times]
            cells = [f"{m:.2f} ({m - medians[0]:+.2f})" for m in medians]
            print(f"{figure:40}" + "".join(f"{cell:>16}" for cell in cells), flush=True)
    finally:
        stop_all(standin, targets)


if __name__ == "__main__":
    main()
