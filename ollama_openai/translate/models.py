"""The model list: /api/tags entries -> OpenAI model objects, aliases included."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..model_names import entry_name, find_model

OWNED_BY = "ollama"


def ollama_models_to_openai(
    tags: dict[str, Any], aliases: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The ``/v1/models`` list from an /api/tags answer (an empty list, never null).

    Each alias whose Ollama model is installed is listed too, under the alias.
    """
    data = [model_entry(entry) for entry in tags.get("models") or []]
    for alias, target in (aliases or {}).items():
        entry = find_model(tags, target)
        if entry is not None:
            data.append(model_entry(entry, model_id=alias))
    return {"object": "list", "data": data}


def model_entry(entry: dict[str, Any], model_id: str | None = None) -> dict[str, Any]:
    """One OpenAI model object for an /api/tags entry."""
    return {
        "id": model_id or entry_name(entry),
        "object": "model",
        "created": epoch_seconds(entry.get("modified_at")),
        "owned_by": OWNED_BY,
    }


def epoch_seconds(timestamp: str | None) -> int:
    """Unix seconds for Ollama's RFC 3339 times, which carry nanoseconds Python cannot parse."""
    if not timestamp:
        return 0
    text = timestamp.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    try:
        return int(datetime.fromisoformat(text).timestamp())
    except ValueError:
        return 0
