"""Where a request's CPU goes in a gunicorn worker: cProfile from the worker's start to its
exit while a load runs (non-streamed chat at 20 clients, or long streams one by one), against a fast
Ollama stand-in; prints the functions that cost the most.

    python -m bench.profile [--stream] [--features off|on] [--seconds 5] [--env NAME=VALUE ...]
                            [--root DIR]
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import pstats  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.loadgen import Connection, read_stream, sse_text  # noqa: E402
from bench.run import (  # noqa: E402
    FEATURES_OFF,
    FEATURES_ON,
    GATEWAY_PATH,
    Standin,
    Target,
    body,
    closed_loop,
)
from ollama_standin import ROOT, GatewayProcess  # noqa: E402

PROFILE_CONFIG = ("-m", "gunicorn", "-c", str(Path(__file__).with_name("gunicorn_profile.py")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stream", action="store_true", help="long streams, not requests")
    parser.add_argument("--seconds", type=float, default=5.0)
    # The stand-in's context window (4,096 tokens) ends a longer answer early.
    parser.add_argument("--tokens", type=int, default=4_000)
    parser.add_argument("--streams", type=int, default=10, help="streams relayed one by one")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument(
        "--features",
        choices=("off", "on"),
        default="off",
        help="keys, limits, access log and metrics, as in the benchmark",
    )
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the gateway")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to profile")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="ollama-openai-profile-"))
    # As the benchmark: no max_tokens the client did not ask for, slots enough for every call.
    env = {
        "DEFAULT_MAX_TOKENS": "",
        "SERVER_SLOTS": "100000",
        **(FEATURES_ON if args.features == "on" else FEATURES_OFF),
        **dict(item.split("=", 1) for item in args.env),
    }
    headers = {"Authorization": "Bearer sk-bench"} if args.features == "on" else {}
    standin = Standin()
    gateway = GatewayProcess(
        standin.url,
        directory / "gateway.log",
        (*PROFILE_CONFIG, "wsgi:app"),
        root=args.root.resolve(),
        PROFILE_DIR=str(directory),
        **env,
    )
    try:
        if args.stream:
            reply = " ".join(f"w{i}" for i in range(args.tokens))
            standin.configure(reply=reply)
            for _ in range(args.streams):
                conn = Connection(gateway.port, headers)
                result = read_stream(conn, GATEWAY_PATH, json.loads(body(True)), b"\n\n", sse_text)
                conn.close()
                assert result.text == reply, "the stream was not relayed intact"
            print(f"{args.streams} streams of {args.tokens} tokens relayed")
        else:
            standin.configure(reply="The sky is blue because of Rayleigh scattering of sunlight.")
            target = Target("gateway", gateway.port, GATEWAY_PATH, gateway, headers)
            run = closed_loop(target, 20, args.seconds)
            print(f"{run.rate:.0f} requests/s at 20 clients (under cProfile)")
    finally:
        gateway.stop()
        standin.stop()
    stats = pstats.Stats(*map(str, directory.glob("worker-*.prof")))
    print_areas(stats)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


# Where a function's own time is counted, by the first of these its file's path holds.
AREAS = (
    ("gevent/hub.py", "idle (the hub waiting)"),
    ("ollama_openai", "ollama_openai"),
    ("ollama_standin", "ollama_openai"),
    ("/requests/", "requests"),
    ("/urllib3/", "urllib3"),
    ("http/client.py", "http.client"),
    ("/flask/", "flask + werkzeug"),
    ("/werkzeug/", "flask + werkzeug"),
    ("/flask_cors/", "flask-cors"),
    ("/flask_limiter/", "flask-limiter + limits"),
    ("/limits/", "flask-limiter + limits"),
    ("/prometheus_client/", "prometheus-client"),
    ("/gunicorn/", "gunicorn"),
    ("/gevent/", "gevent"),
    ("json/", "json"),
    ("logging/", "logging"),
)


def print_areas(stats: pstats.Stats) -> None:
    """Own time by library, as a share of the time not spent idle: where the CPU goes."""
    totals: dict[str, float] = {}
    for (path, _, name), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{path}:{name}"
        area = next((area for part, area in AREAS if part in where), "other")
        if area == "other":
            # The standard library by module; C functions (sockets, the json scanner) as one.
            area = "built-ins (C)" if path == "~" else f"stdlib {Path(path).stem}"
        totals[area] = totals.get(area, 0.0) + own
    busy = sum(seconds for area, seconds in totals.items() if not area.startswith("idle"))
    print(f"CPU by area ({busy:.2f} s busy):")
    for area, seconds in sorted(totals.items(), key=lambda item: -item[1])[:20]:
        share = "" if area.startswith("idle") else f" {100 * seconds / busy:5.1f}%"
        print(f"  {area:<32} {seconds:7.3f} s{share}")


if __name__ == "__main__":
    main()
