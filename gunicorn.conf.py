"""Gunicorn settings for ollama-openai: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Each value comes from the environment when set there; the defaults suit one machine serving a
team. The gateway's own settings (OLLAMA_BASE_URL, TIMEOUT, ...) are checked here first, so a
bad value stops start-up with one line instead of a crashing worker per request; gunicorn's
numbers below are checked the same way, by the same parser.
"""

import glob
import importlib.util
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
from pathlib import Path

import gunicorn.util


def _load_config():
    # config.py is loaded by path: importing the ollama_openai package here would import
    # requests and ssl in the master, before each gevent worker can patch them.
    path = Path(__file__).resolve().parent / "ollama_openai" / "config.py"
    spec = importlib.util.spec_from_file_location("_ollama_openai_settings", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_config = _load_config()


def _checked(read, *args):
    """``read(*args)``; a bad value stops start-up with the one line the README promises."""
    try:
        return read(*args)
    except _config.ConfigError as error:
        sys.exit(f"ollama-openai: {error}")


_settings = _checked(_config.Settings.from_env)

# Server socket
#   bind - HOST:PORT to listen on. HOST defaults to 0.0.0.0 (every interface); set
#   HOST=127.0.0.1 to accept only local clients, e.g. behind an Nginx on the same machine.
bind = f"{_settings.host}:{_settings.port}"

# Worker processes
#   worker_class - gevent: each worker serves many requests at once on green threads, which
#       is what long-lived token streams need (a sync worker would hold one stream each).
#   workers - processes; WEB_CONCURRENCY, default one per CPU core. The gateway's work is
#       mostly waiting on Ollama, so more workers than cores rarely helps.
#   worker_connections - open connections (= concurrent streams) per worker; WORKER_CONNECTIONS,
#       default 2000. Each open stream costs a few tens of KiB.
#   timeout - seconds a worker may stay unresponsive before it is killed and replaced. gevent
#       workers report from their event loop, so long streams do not trip it; only a blocked
#       loop does. Range 10-300.
#   graceful_timeout - on SIGTERM or a reload, seconds running requests (streams included)
#       get to finish before their worker is killed; GRACEFUL_TIMEOUT, default 120, 0 kills at
#       once.
#   keepalive - seconds an idle client connection stays open for its next request; a few
#       seconds suits Nginx or SDK connection pools in front.
worker_class = "gevent"
workers = _checked(_config.whole_number, "WEB_CONCURRENCY", multiprocessing.cpu_count())
worker_connections = _checked(_config.whole_number, "WORKER_CONNECTIONS", 2000)
timeout = 60
graceful_timeout = _checked(_config.whole_number, "GRACEFUL_TIMEOUT", 120, 0)
keepalive = 5

# Control
#   control_socket_disable - gunicorn's runtime control socket is not used by the gateway, and
#       several instances on one machine would fight over its one default path.
control_socket_disable = True

# Application loading
#   preload_app - off: each worker imports the app after gevent has patched the standard
#       library, so requests' sockets are cooperative.
preload_app = False

# Logging
#   accesslog - off: the app writes its own access line per request (request id, model, tokens,
#       time to first token; LOG_FORMAT text or json), which gunicorn's line would only repeat.
#   errorlog - "-": gunicorn's own messages go to stderr, next to the app's.
#   loglevel - follows LOG_LEVEL (default info).
accesslog = None
errorlog = "-"
loglevel = _settings.log_level.lower()


# Errors gunicorn answers itself
#   A request line, headers or chunked body gunicorn cannot read, a URL over 4094 bytes, a
#   header over 8190 bytes or more than 100 headers: gunicorn answers before the app sees the
#   request. Its HTML page is replaced by the OpenAI error envelope every other answer has.


def _write_json_error(sock, status_int, reason, mesg):
    code = "internal_error" if status_int >= 500 else reason.lower().replace(" ", "_")
    error = {
        "message": f"{reason}: {mesg}" if mesg else reason,
        "type": "server_error" if status_int >= 500 else "invalid_request_error",
        "param": None,
        "code": code,
    }
    body = json.dumps({"error": error}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + body)


gunicorn.util.write_error = _write_json_error


# Metrics
#   PROMETHEUS_MULTIPROC_DIR - where each worker writes its metric values, so that /metrics adds
#       up every worker. Unset: a fresh temporary directory for this master, removed on exit.
#       Set: emptied at start, since values left by an earlier run would be counted again.
_METRICS_OWNER = "OLLAMA_OPENAI_METRICS_MASTER"
_METRICS_CREATED = "OLLAMA_OPENAI_METRICS_CREATED"


def _prepare_metrics_directory() -> None:
    if os.environ.get(_METRICS_OWNER) == str(os.getpid()):
        # This file is read again on a reload (SIGHUP): keep counting where the workers were.
        return
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for stale in glob.glob(os.path.join(directory, "*.db")):
            os.remove(stale)
    else:
        directory = tempfile.mkdtemp(prefix="ollama-openai-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ[_METRICS_CREATED] = directory
    os.environ[_METRICS_OWNER] = str(os.getpid())


_prepare_metrics_directory()


def child_exit(server, worker):
    """Forget a dead worker's live gauges (open streams), as prometheus-client's
    ``multiprocess.mark_process_dead`` does. Done by hand: importing prometheus_client imports
    ssl in the master, and workers forked after that could no longer be patched by gevent."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    for live_gauge in glob.glob(os.path.join(directory, f"gauge_live*_{worker.pid}.db")):
        os.remove(live_gauge)


def on_exit(server):
    """Remove the metrics directory this master created."""
    created = os.environ.get(_METRICS_CREATED)
    if created and created == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(created, ignore_errors=True)
