"""What a test sets and reads on the stand-in: the knobs, the installed models, the record.

This module owns the state the answers come from and go to: the fault knobs (type-checked on
every assignment, so a misspelt or mistyped knob fails where it is set instead of doing nothing),
the installed and loaded models, the record of requests, replies and disconnects, and the
connections still being answered. One lock guards it all, so tests may read it while streams run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import NoneType
from typing import Any

from ollama_standin.connection import Connection
from ollama_standin.knobs import Knob, check_tool_calls
from ollama_standin.models import (
    DEFAULT_CAPABILITIES,
    FAMILY_TRAITS,
    UNKNOWN_FAMILY_TRAITS,
    default_models,
    model_key,
    ps_entry,
    tags_entry,
)
from ollama_standin.scheduler import Scheduler
from ollama_standin.wire import RUNNER_ERROR, is_zero_duration


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it; `body` is the parsed JSON or None."""

    method: str
    path: str
    body: Any
    headers: dict[str, str]
    # The client's address and port: one per TCP connection, so kept-alive connections show.
    client: str = ""


class StandinState:
    """The knobs, models and record of one stand-in; `OllamaStandin` answers from them.

    Knob values given to the constructor become the defaults that `reset()` restores. Setting
    any other public attribute raises AttributeError, so a misspelt knob cannot pass unnoticed.
    """

    # Knobs: what a test may change, by assignment (`ollama.reply = "..."`) or configure().
    # Seconds before the first byte of a chat/generate/embed answer (a model loading, a hung
    # Ollama). Applies to every answer of those endpoints, errors included.
    delay_first_byte = Knob(0.0, int, float)
    # Seconds between streamed lines; a non-streamed answer waits for all its tokens.
    token_interval = Knob(0.0, int, float)
    # Status that chat/generate/embed/show answer instead of working (503, 500, 403, ...).
    fail_status = Knob(None, int, NoneType)
    # Body message for fail_status and error_after_tokens; None sends an empty body.
    fail_error = Knob(RUNNER_ERROR, str, NoneType)
    # After N token lines: an `{"error": ...}` line (stream) or a 500 (non-stream).
    error_after_tokens = Knob(None, int, NoneType)
    # After N token lines: the connection is closed without the done line.
    drop_after_tokens = Knob(None, int, NoneType)
    # After N token lines: a line that is not JSON, then the end of the response.
    garbage_after_tokens = Knob(None, int, NoneType)
    # The answer text of every chat/generate; None derives one from the input.
    reply = Knob(None, str, NoneType)
    # The thinking text of thinking models; None derives one from the input.
    thinking = Knob(None, str, NoneType)
    # Tool calls the model makes when the request offers tools and the conversation does not
    # end with tool results (then it answers from them):
    # [{"name": "get_weather", "arguments": {"city": "Tokyo"}}, ...].
    tool_calls = Knob(None, list, NoneType, extra_check=check_tool_calls)
    # Send tool calls as servers before 0.12 did: no "id", no "index".
    tool_calls_without_ids = Knob(False, bool)
    # Prompt tokens the done line reports as served from the KV cache
    # (`prompt_eval_cached_count`, newer servers); None reports nothing, as older servers.
    cached_prompt_tokens = Knob(None, int, NoneType)
    # Fields merged into the final line of a chat/generate answer (the whole answer when not
    # streamed), as a broken or impostor server sends them: {"eval_count": "12"},
    # {"message": "oops"}, {"context": [...200k ids]}, {"padding": "x" * 2**22}.
    done_fields = Knob(None, dict, NoneType)
    # Ollama's capacity (scheduler.py). OLLAMA_NUM_PARALLEL: requests one loaded model answers
    # at once, the others wait; None: any number (Ollama's default is 1; the stand-in's lets
    # tests hold thousands of streams).
    num_parallel = Knob(None, int, NoneType)
    # OLLAMA_MAX_QUEUE: requests that may wait for a slot; one more is a 503 busy.
    max_queue = Knob(512, int)
    # Seconds a model that is not loaded takes to load before its request runs.
    load_seconds = Knob(0.0, int, float)
    # OLLAMA_MAX_LOADED_MODELS: models loaded at once; loading another evicts the least
    # recently used idle one, or waits for one to be idle. None: any number.
    max_loaded_models = Knob(None, int, NoneType)

    def __init__(self, **knobs: Any) -> None:
        self._lock = threading.Lock()
        self._check_knobs(knobs)
        self._defaults = {name: knob.default for name, knob in KNOBS.items()} | knobs
        self._open: set[Connection] = set()
        self._scheduler = Scheduler(evict=self._evicted)
        self.reset()

    def __setattr__(self, name: str, value: Any) -> None:
        # Without this, `ollama.replay = "x"` would add an attribute nobody reads.
        if not name.startswith("_") and not hasattr(type(self), name):
            raise AttributeError(
                f"{type(self).__name__} has no knob {name!r}; the knobs are {', '.join(KNOBS)}"
            )
        super().__setattr__(name, value)

    def reset(self) -> None:
        """Back to a fresh Ollama: default models and knobs, nothing recorded, nothing loaded."""
        with self._lock:
            self._knobs = dict(self._defaults)
            self._models = default_models()
            self._capabilities: dict[str, tuple[str, ...]] = dict(DEFAULT_CAPABILITIES)
            # The Modelfile's `num_ctx` parameter of a model, where it sets one.
            self._modelfile_num_ctx: dict[str, int] = {}
            self._loaded: dict[str, tuple[float, int]] = {}
            self._requests: list[RecordedRequest] = []
            self._replies: list[str] = []
            self._disconnects: list[float] = []
            self._completed_streams = 0
            self._active_streams = 0
        self._scheduler.reset()

    def configure(self, **knobs: Any) -> None:
        """Set several knobs at once; an unknown name or a wrong type raises ValueError."""
        self._check_knobs(knobs)
        with self._lock:
            self._knobs.update(knobs)

    def knobs(self) -> dict[str, Any]:
        """The current knob values."""
        with self._lock:
            return dict(self._knobs)

    @staticmethod
    def _check_knobs(knobs: dict[str, Any]) -> None:
        for name, value in knobs.items():
            if name not in KNOBS:
                raise ValueError(f"unknown knob {name!r}")
            KNOBS[name].check(value)

    # Models.

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
        capabilities: Iterable[str] | None = None,
        num_ctx: int | None = None,
        family: str = "llama",
    ) -> dict[str, Any]:
        """Install a model (listed first, as the newest); capabilities default by family, and
        ``num_ctx`` is its Modelfile's context window (the default one), if it sets one."""
        entry = tags_entry(name, family=family)
        with self._lock:
            self._models = [m for m in self._models if model_key(m["name"]) != model_key(name)]
            self._models.insert(0, entry)
            if capabilities is not None:
                self._capabilities[model_key(name)] = tuple(capabilities)
            if num_ctx is not None:
                self._modelfile_num_ctx[model_key(name)] = num_ctx
        return entry

    def _find_model(self, name: str) -> dict[str, Any] | None:
        key = model_key(name)
        with self._lock:
            return next((m for m in self._models if model_key(m["name"]) == key), None)

    def _traits(self, entry: dict[str, Any]) -> tuple[tuple[str, ...], int, int]:
        """Capabilities (as installed, else by family), context length, embedding length."""
        capabilities, context_length, embedding_length = FAMILY_TRAITS.get(
            entry["details"]["family"], UNKNOWN_FAMILY_TRAITS
        )
        with self._lock:
            capabilities = self._capabilities.get(model_key(entry["name"]), capabilities)
        return capabilities, context_length, embedding_length

    def _modelfile_parameters(self, entry: dict[str, Any]) -> dict[str, int]:
        """The Modelfile's parameters that change an answer here: its `num_ctx`, if set."""
        with self._lock:
            num_ctx = self._modelfile_num_ctx.get(model_key(entry["name"]))
        return {} if num_ctx is None else {"num_ctx": num_ctx}

    def _mark_loaded(self, entry: dict[str, Any], keep_alive: Any, num_ctx: int) -> None:
        unload = is_zero_duration(keep_alive)
        with self._lock:
            if unload:
                self._loaded.pop(entry["name"], None)
            else:
                self._loaded[entry["name"]] = (time.time() + 300, num_ctx)
        if unload:
            self._scheduler.forget(entry["name"])

    def _evicted(self, name: str) -> None:
        """The scheduler unloaded `name` to make room for another model."""
        with self._lock:
            self._loaded.pop(name, None)

    def _running(self) -> list[dict[str, Any]]:
        """The `/api/ps` entries: the loaded models still installed, latest to expire first."""
        with self._lock:
            loaded = dict(self._loaded)
            models = {m["name"]: m for m in self._models}
        return [
            ps_entry(models[name], expires, num_ctx)
            for name, (expires, num_ctx) in sorted(loaded.items(), key=lambda kv: -kv[1][0])
            if name in models
        ]

    # The record.

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

    @property
    def loads(self) -> int:
        """Models loaded since the last reset (each load took `load_seconds`)."""
        return self._scheduler.counts()["loads"]

    def state(self) -> dict[str, Any]:
        """Counters for a process that cannot read the attributes (`GET /_standin/state`)."""
        scheduler = self._scheduler.counts()
        with self._lock:
            return {
                **scheduler,
                "requests": len(self._requests),
                # The TCP connections the recorded requests came on (a client that keeps its
                # connections alive, as Ollama lets it, sends many requests on each).
                "connections": len({request.client for request in self._requests}),
                "disconnects": len(self._disconnects),
                # time.monotonic() of the last hang-up: the clock is system-wide, so another
                # process on this machine can compare it with its own readings.
                "last_disconnect": self._disconnects[-1] if self._disconnects else None,
                "completed_streams": self._completed_streams,
                "active_streams": self._active_streams,
                "knobs": dict(self._knobs),
            }

    def _record_request(self, request: RecordedRequest) -> dict[str, Any]:
        """Record a request; the knob values it will be answered with, read at the same time."""
        with self._lock:
            self._requests.append(request)
            return dict(self._knobs)

    def _record_reply(self, text: str, *, completed_stream: bool = False) -> None:
        with self._lock:
            self._replies.append(text)
            if completed_stream:
                self._completed_streams += 1

    def _record_disconnect(self, text: str | None = None) -> None:
        with self._lock:
            self._disconnects.append(time.monotonic())
            if text is not None:
                self._replies.append(text)

    def _count_stream(self, change: int) -> None:
        with self._lock:
            self._active_streams += change

    # Connections.

    def _track(self, connection: Connection) -> None:
        with self._lock:
            self._open.add(connection)

    def _forget(self, connection: Connection) -> None:
        with self._lock:
            self._open.discard(connection)

    def hang_up_all(self) -> None:
        """Close every connection still being answered, as a killed Ollama would."""
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            connection.hang_up()


# The knobs by name, in the order declared.
KNOBS: dict[str, Knob] = {
    name: knob for name, knob in vars(StandinState).items() if isinstance(knob, Knob)
}
