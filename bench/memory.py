"""What one open stream holds in a gunicorn worker: slow streams held open at two counts, and
the difference between them per stream, by RSS, by tracemalloc (grouped by where it was
allocated) and by the stacks of suspended greenlets (kept on the heap, outside tracemalloc
when it is off), against the Ollama stand-in.

    python -m bench.memory [--few 1000] [--many 3000] [--trace 12] [--root DIR]
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

from bench.loadgen import Connection, read_stream, sse_text  # noqa: E402
from bench.run import FEATURES_OFF, GATEWAY_PATH, Standin, body  # noqa: E402
from ollama_standin import ROOT, GatewayProcess  # noqa: E402

MEMORY_CONFIG = ("-m", "gunicorn", "-c", str(Path(__file__).with_name("gunicorn_memory.py")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--few", type=int, default=1000)
    parser.add_argument("--many", type=int, default=3000)
    parser.add_argument("--trace", type=int, default=0, help="frames tracemalloc keeps (0: off)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="ollama-openai-memory-"))
    standin = Standin()
    # Streams that outlive the measurement: a token every 2 s for 5 minutes.
    standin.configure(reply=" ".join(f"t{i}" for i in range(150)), token_interval=2.0)
    gateway = GatewayProcess(
        standin.url,
        directory / "gateway.log",
        (*MEMORY_CONFIG, "wsgi:app"),
        root=args.root.resolve(),
        MEMORY_DIR=str(directory),
        MEMORY_TRACE=str(args.trace),
        WORKER_CONNECTIONS="12000",
        SERVER_SLOTS="100000",
        DEFAULT_MAX_TOKENS="",
        **FEATURES_OFF,
    )
    payload = json.loads(body(True))

    def client() -> None:
        conn = Connection(gateway.port)
        try:
            read_stream(conn, GATEWAY_PATH, payload, b"\n\n", sse_text)
        finally:
            conn.close()

    clients = []
    try:
        reports = {}
        for name, count in (("few", args.few), ("many", args.many)):
            while len(clients) < count:
                clients.extend(gevent.spawn(client) for _ in range(min(100, count - len(clients))))
                gevent.sleep(0.1)
            while standin.state()["active_streams"] < count:
                gevent.sleep(0.2)
            gevent.sleep(3)  # past the first token and a keep-alive or two
            (directory / f"ask-{name}").touch()
            while not (directory / f"{name}.json").exists():
                gevent.sleep(0.2)
            time.sleep(0.5)
            reports[name] = json.loads((directory / f"{name}.json").read_text())
        report(directory, reports, args.many - args.few, args.top)
    finally:
        gevent.killall(clients)
        gateway.stop()
        standin.stop()


def report(directory: Path, reports: dict, streams: int, top: int) -> None:
    few, many = reports["few"], reports["many"]
    print(f"RSS: {(many['rss_kib'] - few['rss_kib']) / streams:.1f} KiB per stream")
    if few["traced_bytes"] is not None:
        traced = (many["traced_bytes"] - few["traced_bytes"]) / streams / 1024
        print(f"tracemalloc: {traced:.1f} KiB per stream")
    print("greenlets waiting (at the larger count): number, KiB of stack each")
    stack_total = 0.0
    for where, (count, saved) in sorted(many["greenlets"].items(), key=lambda i: -i[1][1]):
        before = few["greenlets"].get(where, [0, 0])
        stack_total += (saved - before[1]) / streams / 1024
        if count >= 10:
            print(f"  {count:6d} {saved / count / 1024:6.1f}  {where}")
    print(f"greenlet stacks: {stack_total:.1f} KiB per stream")
    if few["traced_bytes"] is None:
        return
    snapshots = [tracemalloc.Snapshot.load(str(directory / f"{n}.snap")) for n in ("few", "many")]
    for key in ("filename", "traceback"):
        print(f"tracemalloc difference by {key}, bytes per stream:")
        for stat in snapshots[1].compare_to(snapshots[0], key)[:top]:
            print(f"  {stat.size_diff / streams:8.0f} {stat.count_diff / streams:6.1f} blocks")
            frames = stat.traceback.format(limit=None if key == "traceback" else 1)
            for line in frames[-16:] if key == "traceback" else frames[:1]:
                print(f"      {line.strip()}")


if __name__ == "__main__":
    main()
