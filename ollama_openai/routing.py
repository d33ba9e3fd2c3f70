"""The routing table's rules: what this worker knows of each Ollama server, and which server a
call goes to. Pure: ``OllamaServers`` keeps the table, under its lock, and does the calls."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

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
    """What this worker knows of one server; changed only under OllamaServers' lock."""

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

    def is_up(self, now: float) -> bool:
        return self.down_until <= now

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
