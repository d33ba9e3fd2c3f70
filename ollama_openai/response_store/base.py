"""The response store's contract: what is stored, what every store does, how one fails.

A stored response is kept as one JSON text (``to_json``/``from_json``), the same in every
backend, so what is saved comes back equal. The only error a store raises on purpose is
``StoreUnavailable``; anything else is a bug.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any, Protocol

# The one error a store raises on purpose. For the Responses API: answer 503, the client may
# retry (saving a response again replaces it).
from ..storage import StoreUnavailable as StoreUnavailable

# Most links ``chain`` follows; a longer conversation keeps its newest part.
MAX_CHAIN = 1000
# Most responses one save forgets (expired, or the oldest over the size bound), so that no save
# holds the store long after a downtime or a lowered bound; the next saves go on from there.
FORGET_BATCH = 1000


@dataclass(frozen=True)
class StoredResponse:
    """One stored response: what GET returns, what input_items lists, what a continuation needs."""

    id: str
    # The API key's fingerprint (auth.api_key_id()); None when keys are off.
    owner: str | None
    # The previous_response_id this response continued, if any.
    previous_id: str | None
    # Unix seconds, as in the response object.
    created_at: int
    # This turn's input items as the gateway normalised them (each has an "id").
    input_items: list[dict[str, Any]]
    output_items: list[dict[str, Any]]
    # The whole response object as it was returned to the client.
    response: dict[str, Any]
    # The Ollama server (URL) that answered: the next turn prefers it.
    server: str | None = None


class ResponseStore(Protocol):
    """What the Responses API needs from a store; ``open_store`` picks the backend."""

    def save(self, stored: StoredResponse) -> None:
        """Keep ``stored`` for the store's TTL, replacing a response with the same id."""
        ...

    def load(self, response_id: str, owner: str | None) -> StoredResponse | None:
        """The response, or None when unknown, expired or saved by another owner (one 404)."""
        ...

    def delete(self, response_id: str, owner: str | None) -> bool:
        """Forget the response; False when ``load`` would have given None."""
        ...

    def chain(self, response_id: str, owner: str | None) -> list[StoredResponse] | None:
        """The conversation ending at ``response_id``, oldest first; None if it is not loadable.
        A missing link (expired, deleted) ends it; at most MAX_CHAIN links, the newest."""
        ...


def to_json(stored: StoredResponse) -> str:
    """The stored form: compact JSON, unicode kept as is."""
    record = {item.name: getattr(stored, item.name) for item in fields(stored)}
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def from_json(text: str | bytes) -> StoredResponse:
    """Back from ``to_json``."""
    return StoredResponse(**json.loads(text))
