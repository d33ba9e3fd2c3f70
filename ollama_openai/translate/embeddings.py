"""Embeddings: an OpenAI embeddings request -> the /api/embed payload, and its answer -> the
OpenAI embeddings list, as float arrays or base64."""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from typing import Any

from .options import SamplingDefaults, ollama_extras


@dataclass(frozen=True)
class EmbeddingPlan:
    """One /api/embed call and how its answer comes back."""

    payload: dict[str, Any]
    # The model the client asked for (an alias stays the alias).
    model: str
    encoding_format: str | None
    dimensions: int | None
    path: str = "/api/embed"

    def answer(self, answer: dict[str, Any]) -> dict[str, Any]:
        """The OpenAI embeddings list for Ollama's answer."""
        return ollama_embed_to_openai(
            answer,
            model=self.model,
            encoding_format=self.encoding_format,
            dimensions=self.dimensions,
        )


def plan(
    body: dict[str, Any], model: str, defaults: SamplingDefaults | None = None
) -> EmbeddingPlan:
    """The plan for a validated embeddings request; ``model`` is the Ollama model."""
    return EmbeddingPlan(
        payload=embedding_request_to_ollama(body, model, defaults),
        model=body["model"],
        encoding_format=body.get("encoding_format"),
        dimensions=body.get("dimensions"),
    )


def embedding_request_to_ollama(
    body: dict[str, Any], model: str | None = None, defaults: SamplingDefaults | None = None
) -> dict[str, Any]:
    """The /api/embed payload for a validated OpenAI embeddings request (input always a list):
    the model's default options, keep_alive and truncate under the request's own."""
    defaults = defaults or SamplingDefaults()
    inputs = body["input"]
    payload: dict[str, Any] = {
        "model": model or body["model"],
        "input": [inputs] if isinstance(inputs, str) else list(inputs),
    }
    if body.get("dimensions") is not None:
        payload["dimensions"] = body["dimensions"]
    options = {**defaults.options, **(body.get("options") or {})}
    if options:
        payload["options"] = options
    extras = ollama_extras(body, defaults)
    payload.update({name: extras[name] for name in ("keep_alive", "truncate") if name in extras})
    return payload


def ollama_embed_to_openai(
    answer: dict[str, Any], *, model: str, encoding_format: str | None, dimensions: int | None
) -> dict[str, Any]:
    """The OpenAI embeddings list from an /api/embed answer, in input order.

    Servers that ignore ``dimensions`` send longer vectors; they are cut and normalised again,
    as Ollama itself does, so the request is honoured either way.
    """
    data = []
    for index, vector in enumerate(answer.get("embeddings") or []):
        if dimensions and len(vector) > dimensions:
            vector = _normalised(vector[:dimensions])
        data.append(
            {"object": "embedding", "index": index, "embedding": _encoded(vector, encoding_format)}
        )
    prompt_tokens = answer.get("prompt_eval_count") or 0
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def _normalised(vector: list[float]) -> list[float]:
    norm = sum(value * value for value in vector) ** 0.5
    return [value / norm for value in vector] if norm else vector


def _encoded(vector: list[float], encoding_format: str | None) -> list[float] | str:
    # "base64" is what the Python SDK asks for by default: little-endian float32, base64'd.
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector
