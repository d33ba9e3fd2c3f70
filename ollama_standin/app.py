"""The stand-in's HTTP app: Ollama's routes, answered from the state and the knobs.

This module owns `OllamaStandin`, a plain WSGI application: gin's routing (404, 405, trailing
slash redirects), the order of Ollama's checks before any work, the answer of every endpoint,
streaming with the faults the knobs ask for, and the `/_standin/*` control endpoints for a
stand-in running in another process.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

from werkzeug.wrappers import Request, Response

from ollama_standin.connection import Connection
from ollama_standin.generation import (
    Generation,
    answer_text,
    embed_answer,
    fault,
    load_answer,
    plan,
    whole_answer,
)
from ollama_standin.models import check_capabilities, show_answer, with_latest
from ollama_standin.scheduler import BUSY_ERROR, Busy
from ollama_standin.state import RecordedRequest, StandinState
from ollama_standin.wire import (
    GO_TYPES,
    RUNNER_ERROR,
    Refusal,
    check_embed_input,
    check_messages,
    check_options,
    check_think,
    error_response,
    is_zero_duration,
    json_response,
    ndjson_line,
    parse_body,
)

# A release with everything the stand-in does: logprobs on /api/chat and /api/generate (0.12.11),
# the `think` level "max" (0.21.3).
OLLAMA_VERSION = "0.22.1"
# Ollama's default context window on a small GPU; prompts beyond it are cut silently unless the
# request says `truncate: false`. A larger num_ctx than the model was trained for is lowered to
# that (its `context_length` in /api/show), as Ollama does.
DEFAULT_NUM_CTX = 4096

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
# What garbage_after_tokens sends: a line cut short, so not JSON.
_GARBAGE = b'{"model":"llama3.2","created_at":"2025-05-01T10:00:00Z","message":{"role":"assis'


class OllamaStandin(StandinState):
    """A WSGI app answering like Ollama's native API, with knobs for faults and a request log.

    `OllamaStandin(token_interval=0.5)` makes that knob value the one `reset()` restores. All
    state is guarded by one lock, so tests may read it while streams are running.
    """

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Answer one request; the client's socket is tracked so stop() can hang up on it."""
        request = Request(environ)
        if request.path.startswith("/_standin/"):
            return self._control(request)(environ, start_response)
        connection = Connection(environ.get("werkzeug.socket") or environ.get("standin.socket"))
        self._track(connection)
        try:
            response = self._answer(request, connection)
        except BaseException:
            self._forget(connection)
            raise
        if not isinstance(response.response, Iterator):
            self._forget(connection)
        return response(environ, start_response)

    def _answer(self, request: Request, connection: Connection) -> Response:
        path, method = request.path, request.method
        raw = request.get_data(cache=True)
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = None
        client = f"{request.remote_addr}:{request.environ.get('REMOTE_PORT', '')}"
        knobs = self._record_request(
            RecordedRequest(method, path, body, dict(request.headers), client)
        )

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
            return error_response(499, "request canceled")
        if path in _MODEL_ENDPOINTS and knobs["fail_status"] is not None:
            if knobs["fail_error"] is None:
                empty = Response(b"", knobs["fail_status"])
                del empty.headers["Content-Type"]
                return empty
            return error_response(knobs["fail_status"], knobs["fail_error"])

        try:
            if path == "/":
                return Response("Ollama is running", content_type="text/plain; charset=utf-8")
            if path == "/api/version":
                return json_response({"version": OLLAMA_VERSION})
            if path == "/api/tags":
                return json_response({"models": self.models})
            if path == "/api/ps":
                return json_response({"models": self._running()})
            payload = parse_body(raw, GO_TYPES[path])
            if path == "/api/show":
                return self._show(payload)
            if path == "/api/embed":
                return self._embed(payload, knobs, connection, started_ns)
            return self._complete(path, payload, knobs, connection, started_ns)
        except Refusal as refusal:
            return error_response(refusal.status, refusal.message)
        except Busy:
            return error_response(503, BUSY_ERROR)

    def _control(self, request: Request) -> Response:
        """`/_standin/*`: knobs and counters for a stand-in running in another process."""
        if request.path == "/_standin/state" and request.method == "GET":
            return json_response(self.state())
        if request.path == "/_standin/reset" and request.method == "POST":
            self.reset()
            return json_response(self.state())
        if request.path == "/_standin/config" and request.method == "POST":
            knobs = request.get_json(silent=True)
            if not isinstance(knobs, dict):
                return error_response(400, "expected a JSON object of knob values")
            try:
                self.configure(**knobs)
            except ValueError as exc:
                return error_response(400, str(exc))
            return json_response(self.knobs())
        return Response("404 page not found", 404, content_type="text/plain")

    def _require_model(self, payload: dict[str, Any]) -> dict[str, Any]:
        name = payload.get("model") or ""
        if not name:
            raise Refusal(400, "model is required")
        entry = self._find_model(name)
        if entry is None:
            raise Refusal(404, f"model '{name}' not found")
        return entry

    def _show(self, payload: dict[str, Any]) -> Response:
        name = payload.get("model") or payload.get("name") or ""
        if not name:
            raise Refusal(400, "model is required")
        entry = self._find_model(name)
        if entry is None:
            raise Refusal(404, f"model '{with_latest(name)}' not found")
        parameters = self._modelfile_parameters(entry)
        return json_response(show_answer(entry, self._traits(entry), parameters))

    def _embed(
        self,
        payload: dict[str, Any],
        knobs: dict[str, Any],
        connection: Connection,
        started_ns: int,
    ) -> Response:
        inputs = check_embed_input(payload.get("input"))
        entry = self._require_model(payload)
        options = check_options(payload.get("options"))
        num_ctx = self._num_ctx(entry, options)
        if not self._scheduler.acquire(entry["name"], knobs, connection):
            self._record_disconnect()
            return error_response(499, "request canceled")
        try:
            self._mark_loaded(entry, payload.get("keep_alive"), num_ctx)
            if not inputs:
                return json_response({"model": payload["model"], "embeddings": []})
            length = self._traits(entry)[2]
            dimensions = payload.get("dimensions") or 0
            if 0 < dimensions < length:
                length = dimensions
            return json_response(embed_answer(payload, inputs, length, num_ctx, started_ns))
        finally:
            self._scheduler.release(entry["name"])

    def _num_ctx(self, entry: dict[str, Any], options: dict[str, Any]) -> int:
        """The context window a request gets: its num_ctx, else its Modelfile's, else the
        server's default; at most the model's own maximum."""
        default = self._modelfile_parameters(entry).get("num_ctx", DEFAULT_NUM_CTX)
        return min(options.get("num_ctx") or default, self._traits(entry)[1])

    def _complete(
        self,
        path: str,
        payload: dict[str, Any],
        knobs: dict[str, Any],
        connection: Connection,
        started_ns: int,
    ) -> Response:
        """`/api/chat` and `/api/generate`: validate like Ollama, then answer or stream."""
        chat = path == "/api/chat"
        if chat:
            check_messages(payload.get("messages"))
        check_think(payload.get("think"))
        entry = self._require_model(payload)
        name = payload["model"]
        empty = not payload.get("messages") if chat else not payload.get("prompt")
        if empty and is_zero_duration(payload.get("keep_alive")):
            self._mark_loaded(entry, 0, 0)
            return json_response(load_answer(name, chat, "unload"))
        thinks = check_capabilities(name, self._traits(entry)[0], payload, chat)
        options = check_options(payload.get("options"))
        num_ctx = self._num_ctx(entry, options)
        # A slot of the model, loaded first if it is not: the request waits for it here.
        if not self._scheduler.acquire(entry["name"], knobs, connection):
            self._record_disconnect()
            return error_response(499, "request canceled")
        release = _Once(partial(self._scheduler.release, entry["name"]))
        streaming = False
        try:
            self._mark_loaded(entry, payload.get("keep_alive"), num_ctx)
            if empty:
                return json_response(load_answer(name, chat, "load"))

            top_logprobs = payload.get("top_logprobs") or 0
            if not 0 <= top_logprobs <= 20:
                raise Refusal(400, "top_logprobs must be between 0 and 20")
            generation = plan(payload, knobs, options, chat, thinks, num_ctx)
            generation.started_ns, generation.loaded_ns = started_ns, time.monotonic_ns()
            if payload.get("logprobs"):
                generation.top_logprobs = top_logprobs
            if payload.get("stream", True) is False:
                return self._whole_answer(generation, knobs, connection)
            stream = self._stream(generation, knobs, connection, release)
            response = Response(stream, content_type="application/x-ndjson")
            # The slot is given back at the stream's end, or when the server closes it unread.
            response.call_on_close(release)
            streaming = True
            return response
        finally:
            if not streaming:
                release()

    def _whole_answer(
        self, generation: Generation, knobs: dict[str, Any], connection: Connection
    ) -> Response:
        """A non-streamed answer: it comes after all its tokens, or fails like the stream."""
        struck, at = fault(knobs, len(generation.pieces))
        produced = generation.pieces if struck is None else generation.pieces[:at]
        if not connection.wait(knobs["token_interval"] * len(produced)):
            self._record_disconnect(answer_text(produced))
            return error_response(499, "request canceled")
        self._record_reply(answer_text(produced))
        if struck == "error":
            return error_response(500, knobs["fail_error"] or RUNNER_ERROR)
        if struck == "drop":
            connection.hang_up()
            return Response(b"", 500)
        if struck == "garbage":
            return Response(_GARBAGE, content_type="application/json; charset=utf-8")
        return json_response(whole_answer(generation, produced) | (knobs["done_fields"] or {}))

    def _stream(
        self,
        generation: Generation,
        knobs: dict[str, Any],
        connection: Connection,
        release: Callable[[], None],
    ) -> Iterator[bytes]:
        """NDJSON lines: pieces, tool calls, the done line, unless a knob or the client ends it.

        A client that leaves is noticed either while waiting between tokens or when the server
        closes this generator before the done line (a write failed).
        """
        pieces = generation.pieces
        struck, at = fault(knobs, len(pieces))
        interval = knobs["token_interval"]
        sent: list[tuple[str, str]] = []
        ended = False
        self._count_stream(+1)
        try:
            for index, (kind, piece) in enumerate(pieces):
                if struck is not None and index == at:
                    break
                if index and not connection.wait(interval):
                    return
                sent.append((kind, piece))
                yield ndjson_line(generation.line(kind, piece, done=False))
            if sent and not connection.wait(interval):
                return
            if struck is not None:
                ended = True
                self._record_reply(answer_text(sent))
                if struck == "error":
                    yield ndjson_line({"error": knobs["fail_error"] or RUNNER_ERROR})
                elif struck == "garbage":
                    yield _GARBAGE + b"\n"
                else:
                    connection.hang_up()
                return
            if generation.chat and generation.tool_calls:
                tool_line = generation.line("content", "", done=False)
                tool_line["message"]["tool_calls"] = generation.tool_calls
                yield ndjson_line(tool_line)
                if not connection.wait(interval):
                    return
            ended = True
            self._record_reply(answer_text(sent), completed_stream=True)
            done_line = generation.line("content", "", done=True)
            yield ndjson_line(done_line | (knobs["done_fields"] or {}))
        finally:
            release()
            self._count_stream(-1)
            self._forget(connection)
            if not ended:
                self._record_disconnect(answer_text(sent))


class _Once:
    """Calls `action` the first time it is called, and never again (a slot is freed once)."""

    def __init__(self, action: Callable[[], None]) -> None:
        self._action: Callable[[], None] | None = action
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            action, self._action = self._action, None
        if action is not None:
            action()
