"""Sampling rules shared by the endpoints: OpenAI fields -> Ollama ``options``, reasoning
effort -> ``think``, Ollama's top-level knobs, ``n`` -> one payload per choice, and the one
order in which a value is chosen: the request's own fields and extras, then the model's entry
in the models file, then the global defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..models_file import ModelEntry, Policy, first_set

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
    """What a request gets for the fields it leaves unset: the app's are the global settings
    (DEFAULT_TEMPERATURE, DEFAULT_MAX_TOKENS, CONTEXT_OVERFLOW), and ``for_model`` puts a
    model's entry over them. None (and empty ``options``) sends nothing: Ollama's own default."""

    temperature: float | None = None
    max_tokens: int | None = None
    # Ollama options sent unless the request sets the same one (num_ctx first of all).
    options: Mapping[str, Any] = field(default_factory=dict)
    keep_alive: str | int | float | None = None
    think: bool | str | None = None
    # Whether Ollama may cut a prompt longer than the context window; False asks it to refuse
    # one (400 context_length_exceeded) and to stop a generation that fills the window.
    truncate: bool | None = None

    def for_model(self, entry: ModelEntry, policy: Policy) -> SamplingDefaults:
        """These defaults under a model's entry, which wins where it sets a value. Under a cap
        on the token limit (``max_num_predict``) a limit is always sent, at most the cap."""
        max_tokens = first_set(entry.max_tokens, self.max_tokens)
        cap = policy.max_num_predict
        if cap is not None and "num_predict" not in entry.options:
            max_tokens = cap if max_tokens is None else min(max_tokens, cap)
        overflow = entry.context_overflow
        return SamplingDefaults(
            temperature=first_set(entry.temperature, self.temperature),
            max_tokens=max_tokens,
            options={**self.options, **entry.options},
            keep_alive=first_set(entry.keep_alive, self.keep_alive),
            think=first_set(entry.think, self.think),
            truncate=self.truncate if overflow is None else overflow == "truncate",
        )


def ollama_options(body: dict[str, Any], defaults: SamplingDefaults) -> dict[str, Any]:
    """Ollama ``options`` for a request: the defaults' options, its raw ``options``
    (extra_body) over them, then the OpenAI fields it set, which win, then the default
    temperature and token limit for what is still unset."""
    options = {**defaults.options, **(body.get("options") or {})}
    for name, option in _DIRECT_OPTIONS.items():
        if body.get(name) is not None:
            options[option] = body[name]
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


def ollama_extras(body: dict[str, Any], defaults: SamplingDefaults) -> dict[str, Any]:
    """Ollama's top-level knobs for a request: ``think``, ``keep_alive`` and ``truncate``, its
    own or else the defaults'; those left unset are left out.

    ``truncate: false`` (Ollama 0.12.6+) goes with ``shift: false``: a prompt that does not fit
    is refused instead of losing its start, and a generation that fills the window stops
    (``finish_reason: "length"``) instead of forgetting the start of the conversation.
    """
    extras = {
        "think": first_set(think(body), defaults.think),
        "keep_alive": first_set(body.get("keep_alive"), defaults.keep_alive),
        "truncate": first_set(body.get("truncate"), defaults.truncate),
    }
    if extras["truncate"] is False:
        extras["shift"] = False
    return {name: value for name, value in extras.items() if value is not None}


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
