"""What each model can do: its /api/show facts (capabilities, context lengths), cached per worker
so that neither capability checks nor /v1/models cost an /api/show per request.

Facts are kept while the model's digest (from /api/tags, which /v1/models reads) is the one they
were read for, and otherwise (a request knows no digest) for MODEL_REFRESH_INTERVAL seconds, as
the model lists are. A model is read once at a time: callers arriving meanwhile wait for that
read. A failed read is not kept and gives no facts; the checks that need them are then left to
Ollama itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .concurrent_calls import concurrently
from .errors import ApiError
from .model_names import canonical_model_name, entry_name
from .servers import OllamaServers
from .translate.models import ModelFacts, model_facts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Known:
    facts: ModelFacts
    digest: str | None
    read_at: float


class ModelFactsCache:
    """The /api/show facts of the models asked about, read through ``servers``."""

    def __init__(
        self,
        servers: OllamaServers,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._servers = servers
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._known: dict[str, _Known] = {}
        self._reading: dict[str, threading.Event] = {}

    def facts(self, model: str, digest: str | None = None) -> ModelFacts | None:
        """The facts of ``model`` (an Ollama model name), read now if not known; None if its
        server could not say."""
        key = canonical_model_name(model)
        with self._lock:
            known = self._known.get(key)
            if known is not None and self._fresh(known, digest):
                return known.facts
            reading = self._reading.get(key)
            if reading is None:
                self._reading[key] = threading.Event()
        if reading is not None:
            # Another caller is reading it: its answer (or its failure) is ours.
            reading.wait()
            with self._lock:
                known = self._known.get(key)
            return None if known is None else known.facts
        facts = None
        try:
            facts = model_facts(self._servers.show(model))
        except ApiError as error:
            log.info("/api/show of %s failed (%s); its capabilities are unknown", model, error)
        finally:
            with self._lock:
                if facts is not None:
                    self._known[key] = _Known(facts, digest, self._clock())
                self._reading.pop(key).set()
        return facts

    def facts_of(self, entries: Sequence[dict[str, Any]]) -> dict[str, ModelFacts | None]:
        """The facts of every /api/tags entry, by canonical name; the unknown ones read at once."""
        if not entries:
            return {}
        found = concurrently(
            lambda entry: self.facts(entry_name(entry), entry.get("digest")), entries
        )
        names = [canonical_model_name(entry_name(entry)) for entry in entries]
        return dict(zip(names, found, strict=True))

    def _fresh(self, known: _Known, digest: str | None) -> bool:
        if digest is not None and known.digest is not None:
            return known.digest == digest
        return self._clock() - known.read_at < self._max_age
