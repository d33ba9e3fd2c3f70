"""The model list: /api/tags entries -> OpenAI model objects, aliases included, and what
/api/show and /api/ps tell of each model (its context window, capabilities, where it is loaded),
as extra fields the SDKs keep on their model objects."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..model_names import entry_name, find_model

if TYPE_CHECKING:
    from ..routing import LoadedModel

OWNED_BY = "ollama"
# A PARAMETER line of /api/show's `parameters`: "num_ctx                        8192".
_NUM_CTX_PARAMETER = re.compile(r"^num_ctx\s+(\d+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class ModelFacts:
    """What /api/show says of a model; None where the server did not say (older Ollama)."""

    # "completion", "tools", "vision", "embedding", "thinking", "insert", ...
    capabilities: tuple[str, ...] | None = None
    # The longest context the model was trained for (model_info's <architecture>.context_length).
    max_context_length: int | None = None
    # The context window its Modelfile asks for (PARAMETER num_ctx), its default.
    num_ctx: int | None = None


def model_facts(show: dict[str, Any]) -> ModelFacts:
    """The facts of an /api/show answer."""
    capabilities = show.get("capabilities")
    if not isinstance(capabilities, list):
        capabilities = None
    info = show.get("model_info")
    info = info if isinstance(info, dict) else {}
    architecture = info.get("general.architecture")
    maximum = info.get(f"{architecture}.context_length")
    parameters = show.get("parameters")
    num_ctx = _NUM_CTX_PARAMETER.search(parameters) if isinstance(parameters, str) else None
    return ModelFacts(
        capabilities=None if capabilities is None else tuple(map(str, capabilities)),
        max_context_length=maximum if isinstance(maximum, int) else None,
        num_ctx=int(num_ctx.group(1)) if num_ctx else None,
    )


@dataclass(frozen=True)
class ModelDetails:
    """What /v1/models adds to one model object: the facts of its Ollama model, the window a
    request for this id gets from the models file (None: the Modelfile's), where it is loaded."""

    facts: ModelFacts | None
    num_ctx: int | None = None
    loaded_on: Sequence[tuple[str, LoadedModel]] = ()

    def fields(self) -> dict[str, Any]:
        """The extra fields: ``context_length`` (the window requests get, at most the model's
        maximum; null when only Ollama's server default would say), ``max_context_length``,
        ``capabilities``, ``loaded`` and ``loaded_on`` (server, window, unload time)."""
        facts = self.facts or ModelFacts()
        window = self.num_ctx or facts.num_ctx
        if window is not None and facts.max_context_length is not None:
            window = min(window, facts.max_context_length)
        return {
            "context_length": window,
            "max_context_length": facts.max_context_length,
            "capabilities": None if facts.capabilities is None else list(facts.capabilities),
            "loaded": bool(self.loaded_on),
            "loaded_on": [
                {
                    "server": url,
                    "context_length": model.context_length,
                    "expires_at": model.expires_at,
                }
                for url, model in self.loaded_on
            ],
        }


# Gives the details of one listed id (a model or an alias) and the /api/tags entry it lists.
Describe = Callable[[str, dict[str, Any]], ModelDetails]


def ollama_models_to_openai(
    tags: dict[str, Any],
    aliases: Mapping[str, str] | None = None,
    describe: Describe | None = None,
) -> dict[str, Any]:
    """The ``/v1/models`` list from an /api/tags answer (an empty list, never null).

    Each alias whose Ollama model is installed is listed too, under the alias. With
    ``describe``, each object carries the details it gives.
    """
    listed = [(entry_name(entry), entry) for entry in tags.get("models") or []]
    for alias, target in (aliases or {}).items():
        entry = find_model(tags, target)
        if entry is not None:
            listed.append((alias, entry))
    data = [
        model_entry(entry, model_id, None if describe is None else describe(model_id, entry))
        for model_id, entry in listed
    ]
    return {"object": "list", "data": data}


def model_entry(
    entry: dict[str, Any], model_id: str | None = None, details: ModelDetails | None = None
) -> dict[str, Any]:
    """One OpenAI model object for an /api/tags entry, with its details' fields if given."""
    return {
        "id": model_id or entry_name(entry),
        "object": "model",
        "created": epoch_seconds(entry.get("modified_at")),
        "owned_by": OWNED_BY,
        **({} if details is None else details.fields()),
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
