"""Gunicorn settings for ollama-openai: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Each value comes from the environment when set there; the defaults suit one machine serving a
team. The gateway's own settings (OLLAMA_BASE_URL, TIMEOUT, ..., and the keys files) are
checked here first, so a bad value stops start-up with one line instead of a crashing worker
per request; gunicorn's numbers below are checked the same way, by the same parser. A reload
(SIGHUP) checks them again before anything changes: if they fail, the reload is refused, the
workers go on with the settings in force and the log says why.
"""

import glob
import importlib
import importlib.util
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path

import gunicorn.util


def _load_config():
    # config.py is loaded by path: importing the ollama_openai package here would import
    # requests and ssl in the master, before each gevent worker can patch them. It is loaded as
    # a module of a bare package standing for ollama_openai, so that the standard-library-only
    # modules it imports (env_values, models_file, model_names) load the same way, and afresh on
    # a reload.
    name = "_ollama_openai_settings"
    for loaded in [module for module in sys.modules if module.partition(".")[0] == name]:
        del sys.modules[loaded]
    package = types.ModuleType(name)
    package.__path__ = [str(Path(__file__).resolve().parent / "ollama_openai")]
    sys.modules[name] = package
    return importlib.import_module(f"{name}.config")


def _load_keyring():
    # keyring.py imports only config.py, env_values.py, model_names.py and the standard library:
    # it loads the same way, after _load_config, so that the keys files are checked here too.
    return importlib.import_module("_ollama_openai_settings.keyring")


_config = _load_config()
_keyring = _load_keyring()


def _checked(read, *args):
    """``read(*args)``; a bad value stops start-up with the one line the README promises."""
    try:
        return read(*args)
    except _config.ConfigError as error:
        sys.exit(f"ollama-openai: {error}")


_settings = _checked(_config.Settings.from_env)


def _check_keys():
    """Check the keys files, and leave the keys for the workers: one that boots while a file is
    broken (a worker replaced after a crash) starts with them rather than failing to boot."""
    try:
        keys = _keyring.read_keyring(_settings)
    except _config.ConfigError as error:
        if _keyring.CHECKED_KEYS not in os.environ:
            sys.exit(f"ollama-openai: {error}")
        # A reload whose files broke after reload_if_valid checked them: the last keys stay.
        print(f"ollama-openai: the keys checked last stay: {error}", file=sys.stderr)
        return
    os.environ[_keyring.CHECKED_KEYS] = _keyring.to_json(keys)


_check_keys()

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
        # Metric values and status-page records left by an earlier run would be counted again.
        for pattern in ("*.db", "status-*.json"):
            for stale in glob.glob(os.path.join(directory, pattern)):
                os.remove(stale)
    else:
        directory = tempfile.mkdtemp(prefix="ollama-openai-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ[_METRICS_CREATED] = directory
    os.environ[_METRICS_OWNER] = str(os.getpid())


_prepare_metrics_directory()


def on_starting(server):
    """Check the gateway's settings before every reload (SIGHUP), and refuse a reload they
    fail. gunicorn re-reads this file on a reload, and any failure there ends the master and
    every stream with it; it has no hook before that, so the reload itself is wrapped."""
    reload = server.reload

    def reload_if_valid():
        try:
            config = _load_config()
            _load_keyring().read_keyring(config.Settings.from_env())
        except Exception as error:  # ConfigError, or an edit that broke config.py
            server.log.error(
                "ollama-openai: reload refused, the workers keep the settings in force: %s", error
            )
            return
        reload()

    server.reload = reload_if_valid


# Slots
#   Each worker queues its own calls to Ollama and holds a share of every server's slots
#   (SERVER_SLOTS): worker i of n gets slots // n, plus one while i < slots % n, and at least
#   one. Each worker takes the lowest index no live worker holds, so a worker that replaces a
#   dead one takes its share; the gateway reads "index/count" from OLLAMA_OPENAI_WORKER.


def pre_fork(server, worker):
    """Give the worker to be forked the lowest index no live worker holds."""
    taken = {getattr(other, "slot_index", None) for other in server.WORKERS.values()}
    worker.slot_index = next(index for index in range(len(taken) + 1) if index not in taken)


def post_fork(server, worker):
    """Tell the worker, before it loads the app, its index among the workers."""
    count = server.num_workers
    os.environ[_config.WORKER_VARIABLE] = f"{worker.slot_index % count}/{count}"


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
