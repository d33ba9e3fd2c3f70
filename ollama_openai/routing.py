"""The routing table's rules: what this worker knows of each Ollama server, and which server a
call goes to. Pure: ``ServerTable`` keeps the table under its lock, ``OllamaServers`` does the
calls.

Two sets of rules. ``choose_server``: fewest calls in flight (``ROUTING=least-in-flight``, and
the choice of a server to ask about a model). ``place``: a slot for a call to a model, warm
first (``ROUTING=warm``, the default): a server that has the model loaded and a free slot; else,
when no server that is up has it loaded or the wait for a warm slot would outlast a load, one
that lists it, with the most room (a cold load); else nothing yet, and the call waits its turn
(``admission``). The conversation's own server goes first among equals.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .model_names import canonical_model_name, entry_name
from .translate.models import epoch_seconds


@dataclass(frozen=True)
class LoadedModel:
    """A model loaded on a server, as its /api/ps lists it."""

    # Canonical name.
    name: str
    # The context window it was loaded with (Ollama 0.9.7+); None from older servers.
    context_length: int | None
    # Unix seconds at which it unloads unless used again; None when unknown.
    expires_at: int | None
    size_vram: int | None = None


@dataclass
class ServerState:
    """What this worker knows of one server; changed only under ServerTable's lock."""

    url: str
    # Canonical model names from its last /api/tags; None until one was read.
    models: frozenset[str] | None = None
    in_flight: int = 0
    # When it was last chosen (a sequence number): ties go to the least recent, round-robin.
    last_chosen: int = 0
    # time.monotonic() until which it is skipped; 0: up.
    down_until: float = 0.0
    reason: str | None = None
    refreshed_at: float = float("-inf")
    # What its last /api/ps listed, by canonical name; None until one was read (or it failed).
    loaded: dict[str, LoadedModel] | None = None
    # Calls in flight from this worker, by canonical model name: the slots it holds there.
    running: dict[str, int] = field(default_factory=dict)
    # Models this worker sent it since its last /api/ps: loaded by now, or being loaded.
    sent: frozenset[str] = frozenset()
    # time.monotonic() until which it is skipped after answering 503 busy; 0: not busy.
    busy_until: float = 0.0

    def is_up(self, now: float) -> bool:
        return self.down_until <= now

    def is_ready(self, now: float) -> bool:
        """Up, and not backing off after a 503 busy."""
        return self.down_until <= now and self.busy_until <= now

    def is_warm(self, model: str, wall_clock: float | None = None) -> bool:
        """Whether ``model`` is loaded there (its /api/ps, unless expired since), being loaded,
        or was sent there since that list was read."""
        if self.running.get(model) or model in self.sent:
            return True
        loaded = (self.loaded or {}).get(model)
        if loaded is None:
            return False
        now = time.time() if wall_clock is None else wall_clock
        return loaded.expires_at is None or loaded.expires_at > now

    def may_have(self, model: str) -> bool:
        """Whether it lists ``model`` (a canonical name); unknown lists may have anything."""
        return self.models is None or model in self.models

    def refresh_due(self, now: float, interval: float) -> bool:
        """Time to read its models again: the interval has passed, or its back-off has."""
        if self.down_until:
            return self.down_until <= now
        return self.refreshed_at + interval <= now


def choose_server(
    states: Sequence[ServerState],
    model: str,
    now: float,
    exclude: Collection[str] = (),
    allow_down: bool = True,
    prefer: str | None = None,
) -> ServerState | None:
    """The server for a call to ``model`` (canonical): up, listing it, fewest in flight.

    ``prefer`` (the server that answered the conversation's previous turn, whose cache is
    warm) wins when it is up and lists the model. Ties go to the one chosen least recently,
    which makes them take turns whatever else the servers are chosen for. When every server
    listing the model is down and ``allow_down``, the one whose back-off ends first is tried
    anyway: it may be back, and if not, its error names it. None: no server lists it.
    """
    listing = [s for s in states if s.url not in exclude and s.may_have(model)]
    up = [s for s in listing if s.is_up(now)]
    if not up:
        return min(listing, key=lambda s: s.down_until, default=None) if allow_down else None
    preferred = [s for s in up if s.url == prefer]
    if preferred:
        return preferred[0]
    fewest = min(s.in_flight for s in up)
    return min((s for s in up if s.in_flight == fewest), key=lambda s: s.last_chosen)


@dataclass(frozen=True)
class Slots:
    """How many calls to one model a server runs at once (Ollama's OLLAMA_NUM_PARALLEL), and
    this worker's share of them: a model's own (the models file), else the server's
    (``#slots=N`` in OLLAMA_BASE_URL), else SERVER_SLOTS."""

    default: int = 1
    # By server URL, and by canonical model name.
    servers: Mapping[str, int] = field(default_factory=dict)
    models: Mapping[str, int] = field(default_factory=dict)
    # This worker's index among ``workers`` processes sharing the servers (gunicorn's).
    worker: int = 0
    workers: int = 1

    def total(self, url: str, model: str) -> int:
        """The server's slots for ``model``, over every worker."""
        return self.models.get(model) or self.servers.get(url) or self.default

    def of(self, url: str, model: str) -> int:
        """This worker's slots for ``model`` on the server at ``url``."""
        return worker_share(self.total(url, model), self.worker, self.workers)


class RoutingEvents:
    """What the routing tells the metrics as it happens; here, nobody listens."""

    def queued(self, model: str, change: int) -> None:
        """The queue of ``model`` grew (+1) or shrank (-1)."""

    def waited(self, model: str, seconds: float) -> None:
        """A call to ``model`` waited ``seconds`` in the queue (0 when it did not)."""

    def slot(self, server: str, change: int) -> None:
        """A slot of ``server`` (its public URL) was taken (+1) or given back (-1)."""

    def loaded(self, server: str, models: int) -> None:
        """``server``'s /api/ps lists ``models`` models loaded."""

    def decided(self, server: str, reason: str) -> None:
        """A call went to ``server`` for ``reason`` (LOADED, COLD, AFFINITY, FAILOVER)."""


# Why a call went where it went (the metrics' reasons): the model was loaded there, it was not
# loaded anywhere it could go (or waiting would cost more than loading it), it was the
# conversation's own server, or another server had failed it.
LOADED, COLD, AFFINITY, FAILOVER = "loaded", "cold", "affinity", "failover"


@dataclass(frozen=True)
class Placement:
    """Where a call goes, and why; the slot it takes is held until the call ends."""

    state: ServerState
    reason: str


def place(
    states: Sequence[ServerState],
    model: str,
    now: float,
    slots: Callable[[ServerState], int],
    prefer: str | None = None,
    exclude: Collection[str] = (),
    spill: bool = False,
) -> Placement | None:
    """A server with a free slot for ``model`` (canonical), warm first; None: none yet.

    ``slots`` gives this worker's slots per model on a server. A cold server (one that lists
    the model without having it loaded) is taken when no ready server has the model warm, or,
    when ``spill`` says the wait for a warm slot would outlast a load, an idle one. Among warm
    servers the
    fewest calls in flight win; among cold ones the fewest in flight, then the fewest models
    loaded (the most room); ties take turns. ``prefer`` goes first among those.
    """
    ready = [s for s in states if s.url not in exclude and s.may_have(model) and s.is_ready(now)]
    wall_clock = time.time()
    free = [s for s in ready if s.running.get(model, 0) < slots(s)]
    warm = [s for s in free if s.is_warm(model, wall_clock)]
    if warm:
        return _first(warm, prefer, LOADED, lambda s: (s.in_flight, s.last_chosen))
    anywhere_warm = any(s.is_warm(model, wall_clock) for s in ready)
    if spill or not anywhere_warm:
        cold = [s for s in free if not s.is_warm(model, wall_clock)]
        if anywhere_warm:
            # A spill only onto a server with nothing running: a load there evicts no model
            # whose calls are under way, and waits for none of them to end.
            cold = [s for s in cold if not s.in_flight]
        if cold:
            return _first(
                cold, prefer, COLD, lambda s: (s.in_flight, len(s.loaded or ()), s.last_chosen)
            )
    return None


def _first(
    candidates: list[ServerState],
    prefer: str | None,
    reason: str,
    order: Callable[[ServerState], Any],
) -> Placement:
    for state in candidates:
        if state.url == prefer:
            return Placement(state, AFFINITY)
    return Placement(min(candidates, key=order), reason)


def warm_slots(
    states: Sequence[ServerState], model: str, now: float, slots: Callable[[ServerState], int]
) -> int:
    """The slots this worker has for ``model`` on the ready servers where it is warm."""
    wall_clock = time.time()
    return sum(slots(s) for s in states if s.is_ready(now) and s.is_warm(model, wall_clock))


def worker_share(slots: int, worker: int, workers: int) -> int:
    """One worker's part of a server's ``slots`` when ``workers`` processes share it: spread
    evenly, the remainder to the first workers, and never none (a worker without a slot could
    serve nobody), so with fewer slots than workers the server gets one call per worker."""
    workers = max(workers, 1)
    return max(1, slots // workers + (1 if worker % workers < slots % workers else 0))


# Cached: a handful of server URLs, asked for several times per request (a header, the status
# recorder, the metrics), and urlsplit is not cheap.
@functools.lru_cache(maxsize=256)
def public_url(url: str) -> str:
    """A server's URL without any user or password it may hold: what answers, logs and
    pages may show of it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def merge_tags(answers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One /api/tags answer listing each model once, as the first server listing it has it."""
    seen: set[str] = set()
    models = []
    for answer in answers:
        for entry in answer.get("models") or []:
            name = canonical_model_name(entry_name(entry))
            if name not in seen:
                seen.add(name)
                models.append(entry)
    return {"models": models}


def model_names(answer: dict[str, Any]) -> frozenset[str]:
    """The canonical names of the models an /api/tags answer lists."""
    return frozenset(
        canonical_model_name(entry_name(entry)) for entry in answer.get("models") or []
    )


def loaded_models(answer: dict[str, Any]) -> dict[str, LoadedModel]:
    """The models an /api/ps answer lists, by canonical name."""
    loaded = {}
    for entry in answer.get("models") or []:
        if not isinstance(entry, dict):
            continue
        name = canonical_model_name(entry_name(entry))
        loaded[name] = LoadedModel(
            name=name,
            context_length=_whole(entry.get("context_length")),
            expires_at=epoch_seconds(entry.get("expires_at")) or None,
            size_vram=_whole(entry.get("size_vram")),
        )
    return loaded


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
