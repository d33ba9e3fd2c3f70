"""A stand-in for Ollama's native HTTP API, served over real sockets for end-to-end tests.

This module owns three things:
- the wire format of `/`, `/api/version`, `/api/tags`, `/api/ps`, `/api/show`, `/api/chat`,
  `/api/generate` and `/api/embed`, as described in /work/shared/ollama-api.md and Ollama's
  `server/routes.go` (status codes, `{"error": ...}` bodies, NDJSON lines, Go's JSON quirks);
- the fault knobs a test turns to make it misbehave like a real Ollama (slow load, slow tokens,
  error statuses, an error line mid-stream, a dropped connection, a corrupt line);
- the record of what clients sent and what it answered (`requests`, `replies`, `disconnects`).

`OllamaStandin` is a plain WSGI application. `StandinServer` serves it on a free loopback port
in a thread (werkzeug); `python -m tests.ollama_standin --port N` serves it under gevent for
benchmarks, controlled over HTTP: `POST /_standin/config` (knob values), `POST /_standin/reset`,
`GET /_standin/state`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import json
import random
import re
import select
import socket
import string
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

# 0.12.11 added logprobs to /api/chat and /api/generate.
OLLAMA_VERSION = "0.12.11"
RUNNER_ERROR = "llama runner process has terminated: exit status 2"
# Ollama's default context window on a small GPU; prompts beyond it are cut silently.
DEFAULT_NUM_CTX = 4096

# Knobs: what a test may change. `reset()` restores these (or the values given to the
# constructor, so a benchmark server started with --token-interval keeps it).
KNOB_DEFAULTS: dict[str, Any] = {
    # Seconds before the first byte of a chat/generate/embed answer (a model loading, a hung
    # Ollama). Applies to every answer of those endpoints, errors included.
    "delay_first_byte": 0.0,
    # Seconds between streamed lines; a non-streamed answer waits for all its tokens.
    "token_interval": 0.0,
    # Status that chat/generate/embed/show answer instead of working (503, 500, 403, ...).
    "fail_status": None,
    # Body message for fail_status and error_after_tokens; None sends an empty body.
    "fail_error": RUNNER_ERROR,
    # After N token lines: an `{"error": ...}` line (stream) or a 500 (non-stream).
    "error_after_tokens": None,
    # After N token lines: the connection is closed without the done line.
    "drop_after_tokens": None,
    # After N token lines: a line that is not JSON, then the end of the response.
    "garbage_after_tokens": None,
    # The answer text of every chat/generate; None derives one from the input.
    "reply": None,
    # The thinking text of thinking models; None derives one from the input.
    "thinking": None,
    # Tool calls the model makes when the request offers tools and the conversation does not
    # end with tool results (then it answers from them):
    # [{"name": "get_weather", "arguments": {"city": "Tokyo"}}, ...].
    "tool_calls": None,
    # Send tool calls as servers before 0.12 did: no "id", no "index".
    "tool_calls_without_ids": False,
}

_NUMBER = (int, float)
_OPTIONAL_INT = (int, type(None))
_OPTIONAL_STR = (str, type(None))
_KNOB_TYPES: dict[str, tuple[type, ...]] = {
    "delay_first_byte": _NUMBER,
    "token_interval": _NUMBER,
    "fail_status": _OPTIONAL_INT,
    "fail_error": _OPTIONAL_STR,
    "error_after_tokens": _OPTIONAL_INT,
    "drop_after_tokens": _OPTIONAL_INT,
    "garbage_after_tokens": _OPTIONAL_INT,
    "reply": _OPTIONAL_STR,
    "thinking": _OPTIONAL_STR,
    "tool_calls": (list, type(None)),
    "tool_calls_without_ids": (bool,),
}

# What /api/show reports per architecture: capabilities, context length, embedding length.
_FAMILY_TRAITS: dict[str, tuple[tuple[str, ...], int, int]] = {
    "llama": (("completion", "tools"), 131072, 3072),
    "qwen3": (("completion", "tools", "thinking"), 40960, 4096),
    "nomic-bert": (("embedding",), 2048, 768),
}
_UNKNOWN_FAMILY_TRAITS: tuple[tuple[str, ...], int, int] = (("completion",), 8192, 2048)

_ROUTES: dict[str, tuple[str, ...]] = {
    "/": ("GET", "HEAD"),
    "/api/version": ("GET", "HEAD"),
    "/api/tags": ("GET", "HEAD"),
    "/api/ps": ("GET",),
    "/api/show": ("POST",),
    "/api/chat": ("POST",),
    "/api/generate": ("POST",),
    "/api/embed": ("POST",),
}
_MODEL_ENDPOINTS = ("/api/show", "/api/chat", "/api/generate", "/api/embed")
_SLOW_ENDPOINTS = ("/api/chat", "/api/generate", "/api/embed")
_ROLES = ("system", "user", "assistant", "tool")
_THINK_LEVELS = ("high", "medium", "low")
# Option types as Ollama's api.Options declares them; a wrong type is a 500 from the runner.
_INT_OPTIONS = ("num_keep", "seed", "num_predict", "top_k", "repeat_last_n", "num_ctx")
_INT_OPTIONS += ("num_batch", "num_gpu", "main_gpu", "num_thread")
_FLOAT_OPTIONS = ("top_p", "min_p", "typical_p", "temperature", "repeat_penalty")
_FLOAT_OPTIONS += ("presence_penalty", "frequency_penalty")

# Model pieces: a word with its leading space, or one punctuation mark.
_TOKEN = re.compile(r"\s*\w+|\s*[^\w\s]|\s+")
_BASE64_ALPHABET = frozenset(string.ascii_letters + string.digits + "+/=")
_PACIFIC = timezone(timedelta(hours=-7))


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it; `body` is the parsed JSON or None."""

    method: str
    path: str
    body: Any
    headers: dict[str, str]


class _Refusal(Exception):
    """An answer decided before any work: a status and Ollama's error message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def tokenize(text: str) -> list[str]:
    """Split text the way a model streams it; joining the pieces gives the text back."""
    return _TOKEN.findall(text)


def go_json(value: Any) -> str:
    """JSON as Go's encoding/json writes it: compact, UTF-8, with <, >, & escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def go_timestamp(when_ns: int | None = None) -> str:
    """RFC 3339 in UTC with nanoseconds, trailing zeros trimmed, like Go's time.RFC3339Nano."""
    when_ns = time.time_ns() if when_ns is None else when_ns
    seconds, nanos = divmod(when_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{stamp}.{fraction}Z" if fraction else f"{stamp}Z"


def local_timestamp(when_ns: int | None = None) -> str:
    """A file time as Ollama writes it: RFC3339Nano (zeros trimmed) with the host's UTC offset."""
    when_ns = time.time_ns() if when_ns is None else when_ns
    seconds, nanos = divmod(when_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, _PACIFIC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{stamp}.{fraction}-07:00" if fraction else f"{stamp}-07:00"


def model_key(name: str) -> str:
    """Ollama's name matching: case-insensitive, default registry and namespace, `:latest`."""
    key = name.strip().lower()
    if ":" not in key.rsplit("/", 1)[-1]:
        key += ":latest"
    for prefix in ("registry.ollama.ai/", "library/"):
        key = key.removeprefix(prefix)
    return key


def with_latest(name: str) -> str:
    """The name as /api/show's 404 spells it: `:latest` added when no tag was given."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def tags_entry(
    name: str,
    *,
    family: str = "llama",
    parameter_size: str = "3.2B",
    quantization_level: str = "Q4_K_M",
    size: int = 2_019_393_189,
    modified_at: str | None = None,
) -> dict[str, Any]:
    """One `/api/tags` entry, shaped exactly as Ollama lists an installed model."""
    return {
        "name": with_latest(name),
        "model": with_latest(name),
        "modified_at": modified_at or local_timestamp(),
        "size": size,
        "digest": hashlib.sha256(with_latest(name).encode()).hexdigest(),
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": parameter_size,
            "quantization_level": quantization_level,
        },
    }


def default_models() -> list[dict[str, Any]]:
    """The installed models a fresh stand-in lists, most recently modified first."""
    return [
        tags_entry("llama3.2:latest", modified_at="2025-05-01T10:00:00.123456789-07:00"),
        tags_entry(
            "qwen3:8b",
            family="qwen3",
            parameter_size="8.2B",
            size=5_225_387_923,
            modified_at="2025-04-29T18:42:07.50412-07:00",
        ),
        tags_entry(
            "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
            parameter_size="1.2B",
            size=807_694_464,
            modified_at="2025-04-20T08:15:31.000000001-07:00",
        ),
        tags_entry(
            "nomic-embed-text:latest",
            family="nomic-bert",
            parameter_size="137M",
            quantization_level="F16",
            size=274_302_450,
            modified_at="2025-03-02T11:05:59.987654321-07:00",
        ),
    ]


# The GGUF import's template has no tool section, so Ollama reports no "tools" for it.
_DEFAULT_CAPABILITIES = {
    model_key("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"): ("completion",)
}


class _Connection:
    """The client's socket, watched so a hang-up is noticed between tokens, as Go's server does.

    Without a socket (a WSGI server that exposes none) waits are plain sleeps and a hang-up is
    noticed only when a write fails.
    """

    def __init__(self, sock: socket.socket | None) -> None:
        self.sock = sock

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; False as soon as the client has closed its connection."""
        if seconds <= 0:
            return True
        if self.sock is None:
            time.sleep(seconds)
            return True
        poller = select.poll()
        try:
            poller.register(self.sock, select.POLLIN | select.POLLHUP | select.POLLERR)
        except (OSError, ValueError):
            return False
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if not poller.poll(remaining * 1000):
                return True
            try:
                peeked = self.sock.recv(1, socket.MSG_PEEK)
            except OSError:
                return False
            if not peeked:
                return False
            # The client sent more bytes; it is still there but the socket can't be watched.
            time.sleep(remaining)
        return True

    def hang_up(self) -> None:
        """Close the connection under the client's feet, as a dying server does."""
        if self.sock is None:
            return
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


@dataclass
class _Generation:
    """What the model will produce for one request, decided before the first byte."""

    model: str
    pieces: list[tuple[str, str]]  # ("thinking" | "content", text)
    tool_calls: list[dict[str, Any]]
    done_reason: str
    prompt_eval_count: int
    context: list[int]
    started_ns: int = 0
    loaded_ns: int = 0
    # With "logprobs": true, how many alternatives each token lists ("top_logprobs").
    top_logprobs: int | None = None

    @property
    def eval_count(self) -> int:
        return len(self.pieces) + len(self.tool_calls)

    def metrics(self) -> dict[str, int]:
        """Ollama's counters; zero values are left out, as Go's omitempty does."""
        now = time.monotonic_ns()
        prompt_eval_duration = self.prompt_eval_count * 250_000
        eval_duration = self.eval_count * 10_000_000 + max(now - self.loaded_ns, 0)
        load_duration = max(self.loaded_ns - self.started_ns, 0) + 1_334_875
        values = {
            "total_duration": load_duration + prompt_eval_duration + eval_duration,
            "load_duration": load_duration,
            "prompt_eval_count": self.prompt_eval_count,
            "prompt_eval_duration": prompt_eval_duration,
            "eval_count": self.eval_count,
            "eval_duration": eval_duration if self.eval_count else 0,
        }
        return {key: value for key, value in values.items() if value}


class OllamaStandin:
    """A WSGI app answering like Ollama's native API, with knobs for faults and a request log.

    Knob values given here become the defaults that `reset()` restores. All state is guarded by
    one lock, so tests may read it while streams are running.
    """

    def __init__(self, **knobs: Any) -> None:
        self._lock = threading.Lock()
        self._defaults = dict(KNOB_DEFAULTS)
        self._check_knobs(knobs)
        self._defaults.update(knobs)
        self._open: set[_Connection] = set()
        self.reset()

    # State and helpers for tests.

    def reset(self) -> None:
        """Back to a fresh Ollama: default models and knobs, nothing recorded, nothing loaded."""
        with self._lock:
            for name, value in self._defaults.items():
                setattr(self, name, value)
            self._models = default_models()
            self._capabilities: dict[str, tuple[str, ...]] = dict(_DEFAULT_CAPABILITIES)
            self._loaded: dict[str, tuple[float, int]] = {}
            self._requests: list[RecordedRequest] = []
            self._replies: list[str] = []
            self._disconnects: list[float] = []
            self._completed_streams = 0
            self._active_streams = 0

    def configure(self, **knobs: Any) -> None:
        """Set several knobs at once; an unknown name or a wrong type raises ValueError."""
        self._check_knobs(knobs)
        with self._lock:
            for name, value in knobs.items():
                setattr(self, name, value)

    def knobs(self) -> dict[str, Any]:
        """The current knob values."""
        with self._lock:
            return {name: getattr(self, name) for name in KNOB_DEFAULTS}

    @property
    def models(self) -> list[dict[str, Any]]:
        """The `/api/tags` entries, in the order listed."""
        with self._lock:
            return list(self._models)

    @models.setter
    def models(self, entries: list[dict[str, Any]]) -> None:
        with self._lock:
            self._models = list(entries)

    def add_model(
        self,
        name: str,
        *,
        family: str = "llama",
        parameter_size: str = "3.2B",
        quantization_level: str = "Q4_K_M",
        capabilities: Iterable[str] | None = None,
        size: int = 2_019_393_189,
    ) -> dict[str, Any]:
        """Install a model (listed first, as the newest); capabilities default by family."""
        entry = tags_entry(
            name,
            family=family,
            parameter_size=parameter_size,
            quantization_level=quantization_level,
            size=size,
        )
        with self._lock:
            self._models = [m for m in self._models if model_key(m["name"]) != model_key(name)]
            self._models.insert(0, entry)
            if capabilities is not None:
                self._capabilities[model_key(name)] = tuple(capabilities)
        return entry

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received (control endpoints aside), oldest first."""
        with self._lock:
            return list(self._requests)

    def last_request(self, path: str) -> RecordedRequest | None:
        """The most recent request to `path`, or None."""
        with self._lock:
            matching = [r for r in self._requests if r.path == path]
        return matching[-1] if matching else None

    @property
    def replies(self) -> list[str]:
        """The answer text actually sent for each chat/generate, in order of completion."""
        with self._lock:
            return list(self._replies)

    @property
    def disconnects(self) -> list[float]:
        """`time.monotonic()` of each client that left before its answer was complete."""
        with self._lock:
            return list(self._disconnects)

    @property
    def completed_streams(self) -> int:
        """Streams that reached their done line."""
        with self._lock:
            return self._completed_streams

    def state(self) -> dict[str, Any]:
        """Counters for a process that cannot read the attributes (`GET /_standin/state`)."""
        with self._lock:
            return {
                "requests": len(self._requests),
                "disconnects": len(self._disconnects),
                # time.monotonic() of the last hang-up: the clock is system-wide, so another
                # process on this machine can compare it with its own readings.
                "last_disconnect": self._disconnects[-1] if self._disconnects else None,
                "completed_streams": self._completed_streams,
                "active_streams": self._active_streams,
                "knobs": {name: getattr(self, name) for name in KNOB_DEFAULTS},
            }

    def hang_up_all(self) -> None:
        """Close every connection still being answered, as a killed Ollama would."""
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            connection.hang_up()

    @staticmethod
    def _check_knobs(knobs: dict[str, Any]) -> None:
        for name, value in knobs.items():
            if name not in KNOB_DEFAULTS:
                raise ValueError(f"unknown knob {name!r}")
            wrong_bool = isinstance(value, bool) and bool not in _KNOB_TYPES[name]
            if wrong_bool or not isinstance(value, _KNOB_TYPES[name]):
                raise ValueError(f"knob {name!r} cannot be {value!r}")
            if name == "tool_calls" and value is not None:
                for call in value:
                    if not (isinstance(call, dict) and isinstance(call.get("name"), str)):
                        raise ValueError(f"tool call {call!r} needs a name")

    # WSGI.

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Answer one request; the client's socket is tracked so stop() can hang up on it."""
        request = Request(environ)
        if request.path.startswith("/_standin/"):
            return self._control(request)(environ, start_response)
        connection = _Connection(environ.get("werkzeug.socket") or environ.get("standin.socket"))
        with self._lock:
            self._open.add(connection)
        try:
            response = self._answer(request, connection)
        except BaseException:
            self._close(connection)
            raise
        if not isinstance(response.response, Iterator):
            self._close(connection)
        return response(environ, start_response)

    def _close(self, connection: _Connection) -> None:
        with self._lock:
            self._open.discard(connection)

    def _answer(self, request: Request, connection: _Connection) -> Response:
        path, method = request.path, request.method
        raw = request.get_data(cache=True)
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = None
        with self._lock:
            self._requests.append(RecordedRequest(method, path, body, dict(request.headers)))
            knobs = {name: getattr(self, name) for name in KNOB_DEFAULTS}

        if path not in _ROUTES:
            if path.endswith("/") and path.rstrip("/") in _ROUTES:
                # gin's RedirectTrailingSlash.
                status = 301 if method == "GET" else 307
                return Response(status=status, headers={"Location": path.rstrip("/")})
            return Response("404 page not found", 404, content_type="text/plain")
        if method not in _ROUTES[path]:
            allow = ", ".join(_ROUTES[path])
            return Response(
                "405 method not allowed", 405, content_type="text/plain", headers={"Allow": allow}
            )

        started_ns = time.monotonic_ns()
        if path in _SLOW_ENDPOINTS and not connection.wait(knobs["delay_first_byte"]):
            self._record_disconnect()
            return _error(499, "request canceled")
        if path in _MODEL_ENDPOINTS and knobs["fail_status"] is not None:
            if knobs["fail_error"] is None:
                empty = Response(b"", knobs["fail_status"])
                del empty.headers["Content-Type"]
                return empty
            return _error(knobs["fail_status"], knobs["fail_error"])

        try:
            if path == "/":
                return Response("Ollama is running", content_type="text/plain; charset=utf-8")
            if path == "/api/version":
                return _json({"version": OLLAMA_VERSION})
            if path == "/api/tags":
                return _json({"models": self.models})
            if path == "/api/ps":
                return _json({"models": self._ps()})
            payload = _parse_body(raw, _GO_TYPES[path])
            if path == "/api/show":
                return self._show(payload)
            if path == "/api/embed":
                return self._embed(payload, started_ns)
            return self._complete(path, payload, knobs, connection, started_ns)
        except _Refusal as refusal:
            return _error(refusal.status, refusal.message)

    def _control(self, request: Request) -> Response:
        """`/_standin/*`: knobs and counters for a stand-in running in another process."""
        if request.path == "/_standin/state" and request.method == "GET":
            return _json(self.state())
        if request.path == "/_standin/reset" and request.method == "POST":
            self.reset()
            return _json(self.state())
        if request.path == "/_standin/config" and request.method == "POST":
            knobs = request.get_json(silent=True)
            if not isinstance(knobs, dict):
                return _error(400, "expected a JSON object of knob values")
            try:
                self.configure(**knobs)
            except ValueError as exc:
                return _error(400, str(exc))
            return _json(self.knobs())
        return Response("404 page not found", 404, content_type="text/plain")

    # Models.

    def _find_model(self, name: str) -> dict[str, Any] | None:
        key = model_key(name)
        with self._lock:
            return next((m for m in self._models if model_key(m["name"]) == key), None)

    def _traits(self, entry: dict[str, Any]) -> tuple[tuple[str, ...], int, int]:
        capabilities, context_length, embedding_length = _FAMILY_TRAITS.get(
            entry["details"]["family"], _UNKNOWN_FAMILY_TRAITS
        )
        with self._lock:
            capabilities = self._capabilities.get(model_key(entry["name"]), capabilities)
        return capabilities, context_length, embedding_length

    def _require_model(self, payload: dict[str, Any]) -> dict[str, Any]:
        name = payload.get("model") or ""
        if not name:
            raise _Refusal(400, "model is required")
        entry = self._find_model(name)
        if entry is None:
            raise _Refusal(404, f"model '{name}' not found")
        return entry

    def _mark_loaded(self, entry: dict[str, Any], keep_alive: Any, num_ctx: int) -> None:
        with self._lock:
            if _is_zero_duration(keep_alive):
                self._loaded.pop(entry["name"], None)
            else:
                self._loaded[entry["name"]] = (time.time() + 300, num_ctx)

    def _ps(self) -> list[dict[str, Any]]:
        with self._lock:
            loaded = dict(self._loaded)
            models = {m["name"]: m for m in self._models}
        running = []
        for name, (expires, num_ctx) in sorted(loaded.items(), key=lambda kv: -kv[1][0]):
            entry = models.get(name)
            if entry is None:
                continue
            expires_at = local_timestamp(int(expires * 1_000_000_000))
            running.append(
                {
                    "name": entry["name"],
                    "model": entry["model"],
                    "size": entry["size"],
                    "digest": entry["digest"],
                    "details": entry["details"],
                    "expires_at": expires_at,
                    "size_vram": entry["size"],
                    "context_length": num_ctx,
                }
            )
        return running

    def _show(self, payload: dict[str, Any]) -> Response:
        name = payload.get("model") or payload.get("name") or ""
        if not name:
            raise _Refusal(400, "model is required")
        entry = self._find_model(name)
        if entry is None:
            raise _Refusal(404, f"model '{with_latest(name)}' not found")
        capabilities, context_length, embedding_length = self._traits(entry)
        family = entry["details"]["family"]
        return _json(
            {
                "license": "Stand-in license",
                "modelfile": f'# Modelfile generated by "ollama show"\nFROM {entry["name"]}\n',
                "parameters": 'stop                           "<|eot_id|>"',
                "template": "{{ .Prompt }}",
                "details": entry["details"],
                "model_info": {
                    "general.architecture": family,
                    "general.file_type": 15,
                    "general.parameter_count": _parameter_count(entry),
                    "general.quantization_version": 2,
                    f"{family}.context_length": context_length,
                    f"{family}.embedding_length": embedding_length,
                },
                "capabilities": list(capabilities),
                "modified_at": entry["modified_at"],
            }
        )

    # Inference.

    def _embed(self, payload: dict[str, Any], started_ns: int) -> Response:
        raw_input = payload.get("input")
        if isinstance(raw_input, str):
            inputs = [raw_input] if raw_input else []
        elif isinstance(raw_input, list) and all(isinstance(i, str) for i in raw_input):
            inputs = raw_input
        elif raw_input is None:
            inputs = []
        else:
            raise _Refusal(400, "invalid input type")
        entry = self._require_model(payload)
        options = _check_options(payload.get("options"))
        self._mark_loaded(entry, payload.get("keep_alive"), options.get("num_ctx", DEFAULT_NUM_CTX))
        if not inputs:
            return _json({"model": payload["model"], "embeddings": []})
        length = self._traits(entry)[2]
        dimensions = payload.get("dimensions") or 0
        if 0 < dimensions < length:
            length = dimensions
        loaded_ns = time.monotonic_ns()
        return _json(
            {
                "model": payload["model"],
                "embeddings": [_embedding(text, length) for text in inputs],
                "total_duration": loaded_ns - started_ns + 14_143_917,
                "load_duration": loaded_ns - started_ns + 1_019_500,
                "prompt_eval_count": sum(len(text.split()) + 2 for text in inputs),
            }
        )

    def _complete(
        self,
        path: str,
        payload: dict[str, Any],
        knobs: dict[str, Any],
        connection: _Connection,
        started_ns: int,
    ) -> Response:
        """`/api/chat` and `/api/generate`: validate like Ollama, then answer or stream."""
        chat = path == "/api/chat"
        if chat:
            _check_messages(payload.get("messages"))
        think = payload.get("think")
        if think is not None and not isinstance(think, bool) and think not in _THINK_LEVELS:
            raise _Refusal(
                400,
                f"invalid think value: {go_json(think)} "
                '(must be "high", "medium", "low", true, or false)',
            )
        entry = self._require_model(payload)
        name = payload["model"]
        capabilities = self._traits(entry)[0]
        empty = not payload.get("messages") if chat else not payload.get("prompt")
        if empty and _is_zero_duration(payload.get("keep_alive")):
            self._mark_loaded(entry, 0, 0)
            return _json(_load_answer(name, chat, "unload"))
        if "thinking" in capabilities:
            thinks = think is None or think is True or think in _THINK_LEVELS
        elif think is True or think in _THINK_LEVELS:
            raise _Refusal(400, f"{go_json(name)} does not support thinking")
        else:
            thinks = False
        if "completion" not in capabilities:
            raise _Refusal(
                400, f"{go_json(name)} does not support {'chat' if chat else 'generate'}"
            )
        if chat and payload.get("tools") and "tools" not in capabilities:
            raise _Refusal(400, f"{go_json(name)} does not support tools")
        if not chat and payload.get("suffix") and "insert" not in capabilities:
            raise _Refusal(400, f"{go_json(name)} does not support insert")
        options = _check_options(payload.get("options"))
        num_ctx = options.get("num_ctx") or DEFAULT_NUM_CTX
        self._mark_loaded(entry, payload.get("keep_alive"), num_ctx)
        if empty:
            return _json(_load_answer(name, chat, "load"))

        top_logprobs = payload.get("top_logprobs") or 0
        if not 0 <= top_logprobs <= 20:
            raise _Refusal(400, "top_logprobs must be between 0 and 20")
        generation = _plan(payload, knobs, options, chat, thinks, num_ctx)
        generation.started_ns, generation.loaded_ns = started_ns, time.monotonic_ns()
        if payload.get("logprobs"):
            generation.top_logprobs = top_logprobs
        render = _chat_line if chat else _generate_line
        if payload.get("stream", True) is False:
            return self._whole_answer(generation, knobs, connection, render, chat)
        stream = self._stream(generation, knobs, connection, render, chat)
        return Response(stream, content_type="application/x-ndjson")

    def _whole_answer(
        self,
        generation: _Generation,
        knobs: dict[str, Any],
        connection: _Connection,
        render: Callable[..., dict[str, Any]],
        chat: bool,
    ) -> Response:
        """A non-streamed answer: it comes after all its tokens, or fails like the stream."""
        fault, at = _fault(knobs, len(generation.pieces))
        produced = generation.pieces if fault is None else generation.pieces[:at]
        if not connection.wait(knobs["token_interval"] * len(produced)):
            self._record_disconnect(_text(produced))
            return _error(499, "request canceled")
        self._record_reply(_text(produced))
        if fault == "error":
            return _error(500, knobs["fail_error"] or RUNNER_ERROR)
        if fault == "drop":
            connection.hang_up()
            return Response(b"", 500)
        if fault == "garbage":
            return Response(_GARBAGE, content_type="application/json; charset=utf-8")
        final = render(generation, "", "", done=True)
        thinking = "".join(text for kind, text in produced if kind == "thinking")
        content = _text(produced)
        if generation.top_logprobs is not None:
            final["logprobs"] = [_logprob(text, generation.top_logprobs) for _, text in produced]
        if chat:
            final["message"]["content"] = content
            if thinking:
                final["message"]["thinking"] = thinking
            if generation.tool_calls:
                final["message"]["tool_calls"] = generation.tool_calls
        else:
            final["response"] = content
            if thinking:
                final["thinking"] = thinking
        return _json(final)

    def _stream(
        self,
        generation: _Generation,
        knobs: dict[str, Any],
        connection: _Connection,
        render: Callable[..., dict[str, Any]],
        chat: bool,
    ) -> Iterator[bytes]:
        """NDJSON lines: pieces, tool calls, the done line, unless a knob or the client ends it.

        A client that leaves is noticed either while waiting between tokens or when the server
        closes this generator before the done line (a write failed).
        """
        pieces = generation.pieces
        fault, at = _fault(knobs, len(pieces))
        interval = knobs["token_interval"]
        sent: list[tuple[str, str]] = []
        ended = False
        with self._lock:
            self._active_streams += 1
        try:
            for index, (kind, piece) in enumerate(pieces):
                if fault is not None and index == at:
                    break
                if index and not connection.wait(interval):
                    return
                sent.append((kind, piece))
                yield _line(render(generation, kind, piece, done=False))
            if sent and not connection.wait(interval):
                return
            if fault is not None:
                ended = True
                self._record_reply(_text(sent))
                if fault == "error":
                    yield _line({"error": knobs["fail_error"] or RUNNER_ERROR})
                elif fault == "garbage":
                    yield _GARBAGE + b"\n"
                else:
                    connection.hang_up()
                return
            if chat and generation.tool_calls:
                tool_line = render(generation, "content", "", done=False)
                tool_line["message"]["tool_calls"] = generation.tool_calls
                yield _line(tool_line)
                if not connection.wait(interval):
                    return
            ended = True
            self._record_reply(_text(sent))
            with self._lock:
                self._completed_streams += 1
            yield _line(render(generation, "content", "", done=True))
        finally:
            with self._lock:
                self._active_streams -= 1
            self._close(connection)
            if not ended:
                self._record_disconnect(_text(sent))

    def _record_reply(self, text: str) -> None:
        with self._lock:
            self._replies.append(text)

    def _record_disconnect(self, text: str | None = None) -> None:
        with self._lock:
            self._disconnects.append(time.monotonic())
            if text is not None:
                self._replies.append(text)


# Wire helpers.

_GARBAGE = b'{"model":"llama3.2","created_at":"2025-05-01T10:00:00Z","message":{"role":"assis'

# Field types of each request body, as Go's decoder enforces them (JSON null always passes).
_GO_TYPES: dict[str, tuple[str, dict[str, tuple[tuple[type, ...], str]]]] = {
    "/api/show": ("ShowRequest", {"model": ((str,), "string"), "name": ((str,), "string")}),
    "/api/embed": (
        "EmbedRequest",
        {
            "model": ((str,), "string"),
            "dimensions": ((int,), "int"),
            "truncate": ((bool,), "bool"),
            "options": ((dict,), "map[string]interface {}"),
        },
    ),
    "/api/chat": (
        "ChatRequest",
        {
            "model": ((str,), "string"),
            "messages": ((list,), "[]api.Message"),
            "stream": ((bool,), "bool"),
            "tools": ((list,), "api.Tools"),
            "options": ((dict,), "map[string]interface {}"),
            "logprobs": ((bool,), "bool"),
            "top_logprobs": ((int,), "int"),
        },
    ),
    "/api/generate": (
        "GenerateRequest",
        {
            "model": ((str,), "string"),
            "prompt": ((str,), "string"),
            "suffix": ((str,), "string"),
            "system": ((str,), "string"),
            "stream": ((bool,), "bool"),
            "raw": ((bool,), "bool"),
            "images": ((list,), "[]api.ImageData"),
            "context": ((list,), "[]int"),
            "options": ((dict,), "map[string]interface {}"),
            "logprobs": ((bool,), "bool"),
            "top_logprobs": ((int,), "int"),
        },
    ),
}


def _json_kind(value: Any) -> str:
    """The word Go's decoder uses for a JSON value in its error messages."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _unmarshal_error(value: Any, field: str, go_type: str) -> _Refusal:
    kind = _json_kind(value)
    return _Refusal(
        400, f"json: cannot unmarshal {kind} into Go struct field {field} of type {go_type}"
    )


def _parse_body(raw: bytes, schema: tuple[str, dict[str, tuple[tuple[type, ...], str]]]) -> dict:
    """Decode a request body the way gin's ShouldBindJSON does, with Go's error messages."""
    struct, fields = schema
    if not raw.strip():
        raise _Refusal(400, "missing request body")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        position = getattr(exc, "pos", len(raw))
        text = raw.decode("utf-8", "replace")
        if position >= len(text.rstrip()):
            raise _Refusal(400, "unexpected EOF") from None
        raise _Refusal(
            400, f"invalid character '{text[position]}' looking for beginning of value"
        ) from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise _Refusal(
            400, f"json: cannot unmarshal {_json_kind(body)} into Go value of type api.{struct}"
        )
    for field, (types, go_type) in fields.items():
        value = body.get(field)
        if value is None:
            continue
        wrong_bool = isinstance(value, bool) and bool not in types
        if wrong_bool or not isinstance(value, types):
            raise _unmarshal_error(value, f"{struct}.{field}", go_type)
    return body


def _check_messages(messages: list[Any] | None) -> None:
    """Chat messages as Ollama's api.Message decodes them; the role must be one it knows."""
    for message in messages or []:
        if not isinstance(message, dict):
            raise _unmarshal_error(message, "ChatRequest.messages", "api.Message")
        for field in ("role", "content", "thinking", "tool_name"):
            value = message.get(field)
            if value is not None and not isinstance(value, str):
                raise _unmarshal_error(value, f"Message.messages.{field}", "string")
        if message.get("role") not in _ROLES:
            raise _Refusal(400, "invalid message format")
        for image in message.get("images") or []:
            if not isinstance(image, str):
                raise _unmarshal_error(image, "Message.messages.images", "api.ImageData")
            _check_base64(image)
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            arguments = function.get("arguments") if isinstance(function, dict) else None
            if arguments is not None and not isinstance(arguments, dict):
                raise _unmarshal_error(
                    arguments,
                    "ToolCallFunction.messages.tool_calls.function.arguments",
                    "api.ToolCallFunctionArguments",
                )


def _check_base64(data: str) -> None:
    """Images are raw base64; a `data:` URL fails here just as it does in Go."""
    for position, char in enumerate(data):
        if char not in _BASE64_ALPHABET:
            raise _Refusal(400, f"illegal base64 data at input byte {position}")
    try:
        base64.b64decode(data, validate=True)
    except binascii.Error:
        raise _Refusal(400, f"illegal base64 data at input byte {len(data)}") from None


def _check_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """Ollama's Options.FromMap: typed keys are checked (a 500), unknown keys are ignored."""
    options = options or {}
    for key, value in options.items():
        if value is None:
            continue
        if key in _INT_OPTIONS and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise _Refusal(500, f'option "{key}" must be of type integer')
        if key in _FLOAT_OPTIONS and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            raise _Refusal(500, f'option "{key}" must be of type float32')
        if key == "stop":
            if not isinstance(value, list):
                raise _Refusal(500, 'option "stop" must be of type array')
            if not all(isinstance(item, str) for item in value):
                raise _Refusal(500, 'option "stop" must be of an array of strings')
    return {key: int(value) if key in _INT_OPTIONS else value for key, value in options.items()}


def _is_zero_duration(keep_alive: Any) -> bool:
    """keep_alive 0 (a number of seconds or a Go duration such as "0s") unloads the model."""
    if isinstance(keep_alive, int | float) and not isinstance(keep_alive, bool):
        return keep_alive == 0
    return (
        isinstance(keep_alive, str)
        and re.fullmatch(r"0+(\.0*)?(ns|us|µs|ms|s|m|h)?", keep_alive) is not None
    )


def _plan(
    payload: dict[str, Any],
    knobs: dict[str, Any],
    options: dict[str, Any],
    chat: bool,
    thinks: bool,
    num_ctx: int,
) -> _Generation:
    """Decide the whole answer: text from the knobs or the input, then stop and num_predict."""
    answering_tool = False
    if chat:
        messages = payload.get("messages") or []
        users = [m.get("content") or "" for m in messages if m.get("role") == "user"]
        said = users[-1] if users else ""
        reply = f"Hello! You said: {said}" if said else "Hello!"
        words = sum(len((m.get("content") or "").split()) for m in messages)
        # After tool results, a model answers from them instead of calling tools again.
        results = []
        for message in reversed(messages):
            if message.get("role") != "tool":
                break
            results.insert(0, f"{message.get('tool_name')} says {message.get('content')}")
        if results:
            answering_tool = True
            reply = "From the tools: " + "; ".join(results)
    else:
        said = payload.get("prompt") or ""
        reply = f"Completion of: {said}"
        texts = (payload.get("system"), payload.get("prompt"), payload.get("suffix"))
        words = sum(len((text or "").split()) for text in texts)
    tool_calls = []
    if chat and payload.get("tools") and knobs["tool_calls"] and not answering_tool:
        tool_calls = [_tool_call(index, call) for index, call in enumerate(knobs["tool_calls"])]
        if knobs["tool_calls_without_ids"]:
            tool_calls = [
                {"function": {k: v for k, v in c["function"].items() if k != "index"}}
                for c in tool_calls
            ]
        reply = ""
    elif payload.get("format"):
        # A model constrained by `format` answers JSON.
        reply = go_json({"reply": reply})
    if knobs["reply"] is not None:
        reply = knobs["reply"]

    done_reason = "stop"
    stops = [s for s in options.get("stop") or [] if s]
    cuts = [reply.find(s) for s in stops if s in reply]
    if cuts:
        reply = reply[: min(cuts)]
        tool_calls = []
    pieces = []
    if thinks:
        thinking = knobs["thinking"] if knobs["thinking"] is not None else f"Thinking about: {said}"
        pieces += [("thinking", piece) for piece in tokenize(thinking)]
    pieces += [("content", piece) for piece in tokenize(reply)]
    limit = options.get("num_predict", -1)
    if limit > 0 and len(pieces) + len(tool_calls) > limit:
        pieces, tool_calls, done_reason = pieces[:limit], [], "length"
    return _Generation(
        model=payload["model"],
        pieces=pieces,
        tool_calls=tool_calls,
        done_reason=done_reason,
        prompt_eval_count=min(words + 10, num_ctx),
        context=[] if chat else _token_ids(tokenize(said) + [text for _, text in pieces]),
    )


def _tool_call(index: int, call: dict[str, Any]) -> dict[str, Any]:
    """A tool call as recent Ollama servers send it: a random id and an index."""
    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=8))
    return {
        "id": f"call_{suffix}",
        "function": {"index": index, "name": call["name"], "arguments": call.get("arguments", {})},
    }


def _fault(knobs: dict[str, Any], produced: int) -> tuple[str | None, int]:
    """The earliest fault knob set, and after how many pieces it strikes (at most all of them)."""
    faults = [
        (knobs[f"{fault}_after_tokens"], fault)
        for fault in ("error", "drop", "garbage")
        if knobs[f"{fault}_after_tokens"] is not None
    ]
    if not faults:
        return None, produced
    at, fault = min(faults)
    return fault, min(max(at, 0), produced)


def _text(pieces: list[tuple[str, str]]) -> str:
    return "".join(text for kind, text in pieces if kind == "content")


def _logprob(token: str, alternatives: int) -> dict[str, Any]:
    """Ollama's per-token log probability: stable made-up values, the token itself ranked first."""
    logprob = -(zlib.crc32(token.encode()) % 1000) / 1000

    def entry(text: str, value: float) -> dict[str, Any]:
        return {"token": text, "logprob": value, "bytes": list(text.encode())}

    top = [entry(token, logprob)]
    top += [entry(f"{token}~{rank}", logprob - rank) for rank in range(1, alternatives)]
    # Go's omitempty: no "top_logprobs" key when none were asked for.
    return {**entry(token, logprob), **({"top_logprobs": top} if alternatives else {})}


def _with_logprobs(line: dict[str, Any], generation: _Generation, piece: str) -> dict[str, Any]:
    if generation.top_logprobs is not None and piece:
        line["logprobs"] = [_logprob(piece, generation.top_logprobs)]
    return line


def _chat_line(generation: _Generation, kind: str, piece: str, *, done: bool) -> dict[str, Any]:
    message = {"role": "assistant", "content": piece if kind == "content" else ""}
    if kind == "thinking":
        message["thinking"] = piece
    line: dict[str, Any] = {
        "model": generation.model,
        "created_at": go_timestamp(),
        "message": message,
        "done": done,
    }
    _with_logprobs(line, generation, piece)
    if done:
        line["done_reason"] = generation.done_reason
        line.update(generation.metrics())
    return line


def _generate_line(generation: _Generation, kind: str, piece: str, *, done: bool) -> dict[str, Any]:
    line: dict[str, Any] = {
        "model": generation.model,
        "created_at": go_timestamp(),
        "response": piece if kind == "content" else "",
    }
    if kind == "thinking":
        line["thinking"] = piece
    line["done"] = done
    _with_logprobs(line, generation, piece)
    if done:
        line["done_reason"] = generation.done_reason
        line["context"] = generation.context
        line.update(generation.metrics())
    return line


def _load_answer(name: str, chat: bool, reason: str) -> dict[str, Any]:
    """What an empty chat or generate answers: the model was (un)loaded, nothing generated."""
    answer: dict[str, Any] = {"model": name, "created_at": go_timestamp()}
    if chat:
        answer["message"] = {"role": "assistant", "content": ""}
    else:
        answer["response"] = ""
    answer.update({"done": True, "done_reason": reason})
    return answer


def _token_ids(pieces: list[str]) -> list[int]:
    """Stable fake token ids, like the `context` Ollama returns from /api/generate."""
    return [zlib.crc32(piece.encode()) % 128_256 for piece in pieces]


def _embedding(text: str, length: int) -> list[float]:
    """A unit vector that depends only on the text.

    A shorter vector is the longer one's prefix normalised again, as Ollama truncates
    `dimensions`.
    """
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    generator = random.Random(seed)
    vector = [generator.gauss(0.0, 1.0) for _ in range(length)]
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [float(f"{v / norm:.7g}") for v in vector]


def _parameter_count(entry: dict[str, Any]) -> int:
    size = entry["details"]["parameter_size"]
    scale = {"B": 1_000_000_000, "M": 1_000_000}.get(size[-1:], 1)
    try:
        return int(float(size[:-1]) * scale)
    except ValueError:
        return 0


def _line(value: dict[str, Any]) -> bytes:
    return (go_json(value) + "\n").encode()


def _json(value: Any, status: int = 200) -> Response:
    """gin's c.JSON."""
    return Response(go_json(value), status, content_type="application/json; charset=utf-8")


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


# Serving.


def _no_delay(sock: socket.socket) -> None:
    # Go's net/http sets TCP_NODELAY on every connection; without it, a response written as
    # headers then body waits for the client's delayed ACK (40 ms) on kept-alive connections.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _QuietRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler without the access log, which tests don't need."""

    def setup(self) -> None:
        super().setup()
        _no_delay(self.connection)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class StandinServer:
    """The stand-in on a free loopback port, in a daemon thread; `with StandinServer() as s:`.

    `stop()` returns promptly even with streams open: it hangs up on them, as a killed Ollama
    would (so they count as disconnects).
    """

    def __init__(
        self, standin: OllamaStandin | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.standin = standin if standin is not None else OllamaStandin()
        self._server = make_server(
            host, port, self.standin, threaded=True, request_handler=_QuietRequestHandler
        )
        # Don't let server_close() wait for the threads of open streams.
        self._server.block_on_close = False
        self.url = f"http://{host}:{self._server.port}"
        self._stopped = False
        # A short poll interval so that stop() returns in well under a second.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, hang up on open streams, close the listening socket."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self.standin.hang_up_all()
        self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> StandinServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_standin(standin: OllamaStandin | None = None) -> StandinServer:
    """Start a StandinServer on a free loopback port; call `.stop()` when done."""
    return StandinServer(standin)


def main(argv: list[str] | None = None) -> None:
    """Serve the stand-in under gevent so a benchmark can hold thousands of streams."""
    from gevent.pywsgi import WSGIHandler, WSGIServer

    parser = argparse.ArgumentParser(
        prog="python -m tests.ollama_standin",
        description="Serve the Ollama stand-in under gevent; control it with /_standin/*.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--token-interval", type=float, default=0.0, help="seconds between tokens")
    args = parser.parse_args(argv)

    class SocketHandler(WSGIHandler):
        def handle(self) -> None:
            _no_delay(self.socket)
            super().handle()

        def get_environ(self) -> dict[str, Any]:
            """Expose the socket so the stand-in notices a client hanging up between tokens."""
            environ = super().get_environ()
            environ["standin.socket"] = self.socket
            return environ

    standin = OllamaStandin(token_interval=args.token_interval)
    server = WSGIServer(
        (args.host, args.port), standin, handler_class=SocketHandler, log=None, backlog=4096
    )
    print(f"Ollama stand-in listening on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop(timeout=1)


if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()
    main()
