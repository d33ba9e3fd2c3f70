"""The models file (``MODELS_FILE``): settings per model and per alias, and the operator's policy
on what clients may ask of a model; read once at start-up into frozen dataclasses.

A TOML file with three tables, each optional::

    [policy]                      # what clients may set, for every model
    client_options = ["temperature", "top_k", "top_p", "num_ctx", "stop", "seed"]
    max_num_ctx = 32768
    max_num_predict = 4096
    max_keep_alive = "1h"
    over_limit = "reject"         # or "clamp"

    [models."qwen3:8b"]           # what a request for this model gets when it sets nothing
    options = { num_ctx = 16384 }
    keep_alive = "30m"
    slots = 2                     # calls each server runs at once for it (a model's only)

    [aliases.gpt-4o]              # a name for a model, with settings of its own
    model = "qwen3:8b"
    options = { num_ctx = 32768 }

An alias gets its own settings over its model's entry; a model or an alias may have a
``policy`` table whose keys override the file's ``[policy]``. A bad file raises
``ModelsFileError`` with one line naming the key. Only the standard library and
``model_names`` are imported: gunicorn.conf.py reads the settings, this file included, in the
master, before gevent patches anything.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model_names import canonical_model_name

# Ollama's options (api/types.go Options and Runner) by the JSON type each takes.
INT_OPTIONS = frozenset(
    {
        "num_keep",
        "seed",
        "num_predict",
        "top_k",
        "repeat_last_n",
        "mirostat",
        "num_ctx",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "num_thread",
    }
)
FLOAT_OPTIONS = frozenset(
    {
        "top_p",
        "min_p",
        "typical_p",
        "tfs_z",
        "temperature",
        "repeat_penalty",
        "presence_penalty",
        "frequency_penalty",
        "mirostat_tau",
        "mirostat_eta",
    }
)
BOOL_OPTIONS = frozenset(
    {"penalize_newline", "numa", "low_vram", "f16_kv", "vocab_only", "use_mmap", "use_mlock"}
)
OLLAMA_OPTIONS = INT_OPTIONS | FLOAT_OPTIONS | BOOL_OPTIONS | {"stop"}
THINK_LEVELS = ("low", "medium", "high", "max")
CONTEXT_OVERFLOWS = ("error", "truncate")
OVER_LIMITS = ("reject", "clamp")
# Go's time.ParseDuration, which Ollama reads keep_alive strings with: "5m", "1h30m", "-1s".
_DURATION = re.compile(r"([+-]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+|0)")
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class ModelsFileError(ValueError):
    """The models file cannot be used; the message names the key. Fix the file and restart."""


def keep_alive_seconds(value: Any) -> float | None:
    """Seconds of a keep_alive as Ollama reads it: a number of seconds or a Go duration
    (``"5m"``, ``"1h30m"``); negative means forever (``math.inf``). None: not a keep_alive."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip())):
        sign, body = match.groups()
        seconds = sum(
            float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(body)
        )
        seconds = -seconds if sign == "-" else seconds
    else:
        return None
    return math.inf if seconds < 0 else seconds


@dataclass(frozen=True)
class Policy:
    """What clients may set for a model: which Ollama ``options``, and caps on the context
    window, the token limit and how long the model stays loaded. None: no limit. Over a cap a
    request is refused (400 naming the field) or, with ``over_limit = "clamp"``, lowered (or
    raised, for ``min_keep_alive``) to it, which the gateway logs and tells the client."""

    # Option names clients may send in ``options``; None: any.
    client_options: frozenset[str] | None = None
    max_num_ctx: int | None = None
    max_num_predict: int | None = None
    # Seconds; a keep_alive that is negative (forever) is above any maximum.
    min_keep_alive: float | None = None
    max_keep_alive: float | None = None
    over_limit: str = "reject"


@dataclass(frozen=True)
class ModelEntry:
    """One ``[models.NAME]`` or ``[aliases.NAME]`` table: what a request gets for the fields it
    leaves unset (None: the global default, or Ollama's), and its policy's own keys."""

    options: Mapping[str, Any] = field(default_factory=dict)
    keep_alive: str | int | float | None = None
    think: bool | str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    # "error" or "truncate"; None: CONTEXT_OVERFLOW.
    context_overflow: str | None = None
    # The keys of Policy this entry sets, over the file's [policy].
    policy: Mapping[str, Any] = field(default_factory=dict)
    # Calls each Ollama server runs at once for this model, over SERVER_SLOTS and a server's
    # own; a model's only (an alias runs on its model's slots).
    slots: int | None = None

    def under(self, other: ModelEntry) -> ModelEntry:
        """This entry with ``other``'s values over it (an alias over its model)."""
        return ModelEntry(
            options={**self.options, **other.options},
            keep_alive=first_set(other.keep_alive, self.keep_alive),
            think=first_set(other.think, self.think),
            temperature=first_set(other.temperature, self.temperature),
            max_tokens=first_set(other.max_tokens, self.max_tokens),
            context_overflow=first_set(other.context_overflow, self.context_overflow),
            policy={**self.policy, **other.policy},
            slots=self.slots,
        )


def first_set(*values: Any) -> Any:
    """The first value that is not None (a setting's own, else the one it falls back on)."""
    return next((value for value in values if value is not None), None)


@dataclass(frozen=True)
class ModelProfile:
    """What a request naming one model or alias gets: the Ollama model it runs on, the settings
    (an alias's over its model's) and the policy (theirs over the file's)."""

    model: str
    entry: ModelEntry = field(default_factory=ModelEntry)
    policy: Policy = field(default_factory=Policy)


@dataclass(frozen=True)
class ModelCatalog:
    """Every model and alias the operator configured: the models file, and MODEL_ALIASES (an
    alias there is one with no settings)."""

    # Canonical Ollama model name -> its entry.
    models: Mapping[str, ModelEntry] = field(default_factory=dict)
    # Alias -> (the Ollama model it names, its own entry).
    aliases: Mapping[str, tuple[str, ModelEntry]] = field(default_factory=dict)
    # The file's [policy] keys, for every model.
    policy: Mapping[str, Any] = field(default_factory=dict)

    @property
    def slots(self) -> dict[str, int]:
        """Canonical model name -> its own slots, for the models that set some."""
        return {name: entry.slots for name, entry in self.models.items() if entry.slots}

    @property
    def alias_targets(self) -> dict[str, str]:
        """Alias -> the Ollama model it names."""
        return {alias: target for alias, (target, _) in self.aliases.items()}

    def profile(self, requested: str) -> ModelProfile:
        """What a request for ``requested`` (a model or an alias) gets."""
        target, own = self.aliases.get(requested, (requested, None))
        entry = self.models.get(canonical_model_name(target), ModelEntry())
        if own is not None:
            entry = entry.under(own)
        return ModelProfile(target, entry, Policy(**{**self.policy, **entry.policy}))


def read_models_file(path: str, env_aliases: tuple[tuple[str, str], ...] = ()) -> ModelCatalog:
    """The catalog of a models file (empty ``path``: none) with MODEL_ALIASES' aliases added."""
    catalog = ModelCatalog()
    if path:
        try:
            with Path(path).open("rb") as file:
                document = tomllib.load(file)
        except OSError as error:
            raise ModelsFileError(f"cannot be read: {error}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ModelsFileError(f"is not valid TOML: {error}") from None
        catalog = _catalog(document)
    aliases = dict(catalog.aliases)
    for alias, target in env_aliases:
        if alias in aliases:
            raise ModelsFileError(f"{_key('aliases', alias)} is also in MODEL_ALIASES; keep one")
        if target in catalog.aliases:
            raise ModelsFileError(
                f"MODEL_ALIASES points {alias!r} at {_key('aliases', target)}; point it at an "
                "Ollama model"
            )
        aliases[alias] = (target, ModelEntry())
    return ModelCatalog(catalog.models, aliases, catalog.policy)


def _catalog(document: dict[str, Any]) -> ModelCatalog:
    _known(document, ("policy", "models", "aliases"), "")
    policy = _policy(_table(document, "policy", ()), ("policy",))
    models: dict[str, ModelEntry] = {}
    for name, table in _table(document, "models", ()).items():
        where = ("models", name)
        canonical = canonical_model_name(name)
        if canonical in models:
            raise ModelsFileError(f"{_key(*where)} names a model listed already ({canonical})")
        models[canonical] = _entry(table, where, alias=False)
    aliases: dict[str, tuple[str, ModelEntry]] = {}
    for alias, table in _table(document, "aliases", ()).items():
        where = ("aliases", alias)
        entry = _entry(table, where, alias=True)
        aliases[alias] = (table["model"], entry)
    for alias, (target, _) in aliases.items():
        if target in aliases:
            raise ModelsFileError(
                f"{_key('aliases', alias, 'model')} names the alias {target!r}; "
                "point it at an Ollama model"
            )
    catalog = ModelCatalog(models, aliases, policy)
    _check_caps(("policy",), ModelProfile("", ModelEntry(), Policy(**policy)))
    for name in _table(document, "models", ()):
        _check_caps(("models", name), catalog.profile(name))
    for alias in aliases:
        _check_caps(("aliases", alias), catalog.profile(alias))
    return catalog


def _entry(table: Any, where: tuple[str, ...], alias: bool) -> ModelEntry:
    if not isinstance(table, dict):
        raise ModelsFileError(f"{_key(*where)} must be a table")
    keys = ("options", "keep_alive", "think", "temperature", "max_tokens", "context_overflow")
    names = ("model", *keys, "policy") if alias else (*keys, "policy", "slots")
    for name, value in table.items():
        if name not in names and isinstance(value, dict):
            # [models.llama3.2] is the table "2" inside the table "llama3" in TOML.
            raise ModelsFileError(
                f"{_key(*where, name)} is not a known key; a name holding a dot must be quoted: "
                f'[{where[0]}."{".".join((*where[1:], name))}"]'
            )
    _known(table, names, _key(*where))
    if alias:
        model = table.get("model")
        if not isinstance(model, str) or not model.strip():
            raise ModelsFileError(f"{_key(*where, 'model')} must name an Ollama model")
    think = table.get("think")
    if think is not None and not isinstance(think, bool) and think not in THINK_LEVELS:
        raise ModelsFileError(f"{_key(*where, 'think')} must be true, false or a level")
    temperature = table.get("temperature")
    if temperature is not None and not (_is_number(temperature) and 0 <= temperature <= 2):
        raise ModelsFileError(f"{_key(*where, 'temperature')} must be a number from 0 to 2")
    return ModelEntry(
        options=_options(_table(table, "options", where), (*where, "options")),
        keep_alive=_keep_alive(table.get("keep_alive"), (*where, "keep_alive"), allow_forever=True),
        think=think,
        temperature=None if temperature is None else float(temperature),
        max_tokens=_positive(table.get("max_tokens"), (*where, "max_tokens")),
        context_overflow=_one_of(
            table.get("context_overflow"), CONTEXT_OVERFLOWS, (*where, "context_overflow")
        ),
        policy=_policy(_table(table, "policy", where), (*where, "policy")),
        slots=_positive(table.get("slots"), (*where, "slots")),
    )


def _policy(table: dict[str, Any], where: tuple[str, ...]) -> dict[str, Any]:
    """The Policy keys a [policy] table sets, checked and converted."""
    names = ("client_options", "max_num_ctx", "max_num_predict", "min_keep_alive")
    _known(table, (*names, "max_keep_alive", "over_limit"), _key(*where))
    policy: dict[str, Any] = {}
    if "client_options" in table:
        allowed = table["client_options"]
        if not isinstance(allowed, list) or not all(isinstance(name, str) for name in allowed):
            raise ModelsFileError(f"{_key(*where, 'client_options')} must be a list of names")
        for name in allowed:
            _option_name(name, (*where, "client_options"))
        policy["client_options"] = frozenset(allowed)
    for name in ("max_num_ctx", "max_num_predict"):
        if name in table:
            policy[name] = _positive(table[name], (*where, name))
    for name in ("min_keep_alive", "max_keep_alive"):
        if name in table:
            policy[name] = keep_alive_seconds(_keep_alive(table[name], (*where, name)))
    if "over_limit" in table:
        policy["over_limit"] = _one_of(table["over_limit"], OVER_LIMITS, (*where, "over_limit"))
    return policy


def _check_caps(where: tuple[str, ...], profile: ModelProfile) -> None:
    """A model's (or an alias's) own settings are within its policy."""
    policy, entry = profile.policy, profile.entry
    low, high = policy.min_keep_alive, policy.max_keep_alive
    if low is not None and high is not None and low > high:
        raise ModelsFileError(f"{_key(*where)}: min_keep_alive is above max_keep_alive")
    seconds = keep_alive_seconds(entry.keep_alive)
    limits = [
        ("options.num_ctx", entry.options.get("num_ctx"), "max_num_ctx"),
        ("options.num_predict", entry.options.get("num_predict"), "max_num_predict"),
        ("max_tokens", entry.max_tokens, "max_num_predict"),
        ("keep_alive", seconds, "max_keep_alive"),
    ]
    for key, value, cap_name in limits:
        cap = getattr(policy, cap_name)
        if value is not None and cap is not None and not 0 <= value <= cap:
            raise ModelsFileError(f"{_key(*where)}: {key} is above {cap_name}")
    if seconds is not None and low is not None and seconds < low:
        raise ModelsFileError(f"{_key(*where)}: keep_alive is below min_keep_alive")


def _options(table: dict[str, Any], where: tuple[str, ...]) -> dict[str, Any]:
    for name, value in table.items():
        _option_name(name, where)
        key = _key(*where, name)
        if name in INT_OPTIONS and (isinstance(value, bool) or not isinstance(value, int)):
            raise ModelsFileError(f"{key} must be a whole number")
        if name in FLOAT_OPTIONS and not _is_number(value):
            raise ModelsFileError(f"{key} must be a number")
        if name in BOOL_OPTIONS and not isinstance(value, bool):
            raise ModelsFileError(f"{key} must be true or false")
        if name == "stop" and not (
            isinstance(value, list) and all(isinstance(item, str) for item in value)
        ):
            raise ModelsFileError(f"{key} must be a list of strings")
        if name == "num_ctx" and value < 1:
            raise ModelsFileError(f"{key} must be a positive whole number")
    return dict(table)


def _option_name(name: str, where: tuple[str, ...]) -> None:
    if name not in OLLAMA_OPTIONS:
        raise ModelsFileError(
            f"{_key(*where)} names {name!r}, which is not an Ollama option "
            f"({', '.join(sorted(OLLAMA_OPTIONS))})"
        )


def _keep_alive(value: Any, where: tuple[str, ...], allow_forever: bool = False) -> Any:
    if value is None:
        return None
    seconds = keep_alive_seconds(value)
    if seconds is None or (seconds == math.inf and not allow_forever):
        raise ModelsFileError(
            f'{_key(*where)} must be a duration such as "30m" or a number of seconds'
        )
    return value


def _positive(value: Any, where: tuple[str, ...]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelsFileError(f"{_key(*where)} must be a positive whole number")
    return value


def _one_of(value: Any, choices: tuple[str, ...], where: tuple[str, ...]) -> str | None:
    if value is not None and value not in choices:
        raise ModelsFileError(f"{_key(*where)} must be one of {', '.join(choices)}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _table(document: dict[str, Any], name: str, where: tuple[str, ...]) -> dict[str, Any]:
    value = document.get(name, {})
    if not isinstance(value, dict):
        raise ModelsFileError(f"{_key(*where, name)} must be a table")
    return value


def _known(table: dict[str, Any], names: tuple[str, ...], where: str) -> None:
    for name in table:
        if name not in names:
            place = f"{where}.{_key(name)}" if where else _key(name)
            raise ModelsFileError(f"{place} is not a known key ({', '.join(names)})")


def _key(*parts: str) -> str:
    """A TOML key path as the file would write it: ``models."qwen3:8b".options``."""
    return ".".join(part if _BARE_KEY.fullmatch(part) else f'"{part}"' for part in parts)
