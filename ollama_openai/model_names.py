"""Ollama model names: which names mean the same model, and what an alias stands for.

Shared by the routing across servers and the model list; no HTTP, no Flask.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def canonical_model_name(name: str) -> str:
    """``llama3.2`` and ``llama3.2:latest`` name one model; hosts may carry a port's colon."""
    last_segment = name.rsplit("/", 1)[-1]
    return name if ":" in last_segment else f"{name}:latest"


def resolve_model(requested: str, aliases: Mapping[str, str]) -> str:
    """The Ollama model a client's model name stands for (MODEL_ALIASES), else the name itself."""
    return aliases.get(requested, requested)


def find_model(tags: dict[str, Any], requested: str) -> dict[str, Any] | None:
    """The /api/tags entry for a model name; a name without a tag means ``:latest``."""
    wanted = canonical_model_name(requested)
    for entry in tags.get("models") or []:
        if canonical_model_name(entry_name(entry)) == wanted:
            return entry
    return None


def entry_name(entry: dict[str, Any]) -> str:
    """The name of an /api/tags entry (``name``, or ``model`` on servers that send only that)."""
    return str(entry.get("name") or entry.get("model", ""))
