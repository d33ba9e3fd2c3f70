"""gunicorn settings for measuring memory: the gateway's own (gunicorn.conf.py), plus, in each
worker, a greenlet that answers ``MEMORY_DIR/ask-<name>`` files with ``<name>.json`` (RSS,
tracemalloc's total, the greenlets and the stack each keeps on the heap) and, when
``MEMORY_TRACE`` frames are traced, ``<name>.snap`` (a tracemalloc snapshot).

``python -m bench.memory`` uses it; it is never used to serve.
"""

import os
from pathlib import Path

# The checkout gunicorn runs in (``--root``), which may be another than this file's.
_conf = Path.cwd() / "gunicorn.conf.py"
# Run as if it were the file gunicorn was given (it finds the package beside itself).
_settings = {"__file__": str(_conf), "__name__": "gunicorn_conf"}
exec(compile(_conf.read_text(), str(_conf), "exec"), _settings)
globals().update({name: value for name, value in _settings.items() if not name.startswith("__")})


def post_worker_init(worker):
    import tracemalloc

    import gevent

    frames = int(os.environ.get("MEMORY_TRACE", "0"))
    if frames:
        tracemalloc.start(frames)
    gevent.spawn_raw(_answer_asks, Path(os.environ["MEMORY_DIR"]))


def _answer_asks(directory):
    import gevent

    while True:
        for ask in directory.glob("ask-*"):
            name = ask.name.removeprefix("ask-")
            _measure(directory, name)
            ask.unlink()
        gevent.sleep(0.2)


def _measure(directory, name):
    import collections
    import gc
    import json
    import tracemalloc

    import greenlet

    gc.collect()
    stacks = collections.Counter()
    counts = collections.Counter()
    for obj in gc.get_objects():
        if isinstance(obj, greenlet.greenlet) and obj.gr_frame is not None:
            # Where it waits: the innermost frames of its Python stack.
            frames, frame = [], obj.gr_frame
            while frame is not None:
                frames.append(f"{Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}")
                frame = frame.f_back
            where = " <- ".join(frames[:4]) + f" (depth {len(frames)})"
            counts[where] += 1
            stacks[where] += obj._stack_saved
    rss = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    report = {
        "rss_kib": rss,
        "traced_bytes": tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None,
        "greenlets": {where: [counts[where], stacks[where]] for where in counts},
    }
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(str(directory / f"{name}.snap"))
    (directory / f"{name}.json").write_text(json.dumps(report))
