"""gunicorn settings for profiling: the gateway's own (gunicorn.conf.py), plus cProfile running
in each worker from its fork to its exit, the stats written to PROFILE_DIR/worker-<pid>.prof.

``python -m bench.profile`` uses it; it is never used to serve.
"""

import cProfile
import os
from pathlib import Path

# The checkout gunicorn runs in (``--root``), which may be another than this file's.
_conf = Path.cwd() / "gunicorn.conf.py"
# Run as if it were the file gunicorn was given (it finds the package beside itself).
_settings = {"__file__": str(_conf), "__name__": "gunicorn_conf"}
exec(compile(_conf.read_text(), str(_conf), "exec"), _settings)
globals().update({name: value for name, value in _settings.items() if not name.startswith("__")})

_profiler = cProfile.Profile()


def post_worker_init(worker):
    _profiler.enable()


def worker_exit(server, worker):
    _profiler.disable()
    _profiler.dump_stats(os.path.join(os.environ["PROFILE_DIR"], f"worker-{worker.pid}.prof"))
