"""Sampling rules shared by the generating endpoints: OpenAI fields -> Ollama ``options``,
reasoning effort -> ``think``, and ``n`` -> one payload per choice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# OpenAI field -> Ollama option, for the fields whose value passes through unchanged.
_DIRECT_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}
# OpenAI's "minimal" has no Ollama level; the nearest is "low". "xhigh" has none either: "high"
# is the nearest that every Ollama with levels takes, while "max" exists only since 0.21.3.
THINK_BY_EFFORT: dict[str, bool | str] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "max",
}


@dataclass(frozen=True)
class SamplingDefaults:
    """Values applied when a request leaves a field unset; None leaves Ollama's own default."""

    temperature: float | None = None
    max_tokens: int | None = None


def ollama_options(body: dict[str, Any], defaults: SamplingDefaults) -> dict[str, Any]:
    """Ollama ``options`` for a request: its raw ``options`` (extra_body), then the OpenAI
    fields it set, which win, then the defaults for what is still unset."""
    options = dict(body.get("options") or {})
    for field, option in _DIRECT_OPTIONS.items():
        if body.get(field) is not None:
            options[option] = body[field]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    stop = body.get("stop")
    if stop is not None:
        options["stop"] = [stop] if isinstance(stop, str) else list(stop)
    if defaults.temperature is not None:
        options.setdefault("temperature", defaults.temperature)
    if defaults.max_tokens is not None:
        options.setdefault("num_predict", defaults.max_tokens)
    return options


def think(body: dict[str, Any]) -> bool | str | None:
    """Ollama's ``think``: the raw extra if given, else mapped from ``reasoning_effort``."""
    value = body.get("think")
    if value is None and body.get("reasoning_effort") is not None:
        value = THINK_BY_EFFORT[body["reasoning_effort"]]
    return value


def choice_count(body: dict[str, Any]) -> int:
    """How many answers a request asks for per prompt (``n``, 1 when unset)."""
    return body.get("n") or 1


def per_choice(payload: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """``count`` payloads for ``count`` choices of one prompt.

    A fixed ``seed`` is offset by the choice index: the n choices then differ, as OpenAI's do,
    and the whole answer stays reproducible. The offset wraps around within Go's int64, which
    Ollama reads it as. A seed that is no integer (a raw option) is left for Ollama to refuse.
    """
    seed = payload["options"].get("seed")
    if count == 1 or isinstance(seed, bool) or not isinstance(seed, int):
        return [payload] * count
    return [
        {**payload, "options": {**payload["options"], "seed": _int64(seed + i)}}
        for i in range(count)
    ]


def _int64(value: int) -> int:
    return (value + 2**63) % 2**64 - 2**63
