"""The installed models: how Ollama names, lists, shows and reports them as loaded.

This module owns the `/api/tags` entry, the models a fresh stand-in has, Ollama's name
matching (`llama3.2` is `llama3.2:latest`), what each family can do (capabilities, context and
embedding length) and its refusals when asked for more, the bodies of `/api/show` and the
entries of `/api/ps`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ollama_standin.wire import THINK_LEVELS, Refusal, go_json, local_timestamp

# What /api/show reports per architecture: capabilities, context length, embedding length.
FAMILY_TRAITS: dict[str, tuple[tuple[str, ...], int, int]] = {
    "llama": (("completion", "tools"), 131072, 3072),
    "qwen3": (("completion", "tools", "thinking"), 40960, 4096),
    "nomic-bert": (("embedding",), 2048, 768),
}
UNKNOWN_FAMILY_TRAITS: tuple[tuple[str, ...], int, int] = (("completion",), 8192, 2048)


def model_key(name: str) -> str:
    """Ollama's name matching: case-insensitive, default registry and namespace, `:latest`."""
    key = name.strip().lower()
    if ":" not in key.rsplit("/", 1)[-1]:
        key += ":latest"
    for prefix in ("registry.ollama.ai/", "library/"):
        key = key.removeprefix(prefix)
    return key


def with_latest(name: str) -> str:
    """The name as /api/show's 404 spells it: `:latest` added when no tag was given."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def tags_entry(
    name: str,
    *,
    family: str = "llama",
    parameter_size: str = "3.2B",
    quantization_level: str = "Q4_K_M",
    size: int = 2_019_393_189,
    modified_at: str | None = None,
) -> dict[str, Any]:
    """One `/api/tags` entry, shaped exactly as Ollama lists an installed model."""
    return {
        "name": with_latest(name),
        "model": with_latest(name),
        "modified_at": modified_at or local_timestamp(),
        "size": size,
        "digest": hashlib.sha256(with_latest(name).encode()).hexdigest(),
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": parameter_size,
            "quantization_level": quantization_level,
        },
    }


def default_models() -> list[dict[str, Any]]:
    """The installed models a fresh stand-in lists, most recently modified first."""
    return [
        tags_entry("llama3.2:latest", modified_at="2025-05-01T10:00:00.123456789-07:00"),
        tags_entry(
            "qwen3:8b",
            family="qwen3",
            parameter_size="8.2B",
            size=5_225_387_923,
            modified_at="2025-04-29T18:42:07.50412-07:00",
        ),
        tags_entry(
            "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
            parameter_size="1.2B",
            size=807_694_464,
            modified_at="2025-04-20T08:15:31.000000001-07:00",
        ),
        tags_entry(
            "nomic-embed-text:latest",
            family="nomic-bert",
            parameter_size="137M",
            quantization_level="F16",
            size=274_302_450,
            modified_at="2025-03-02T11:05:59.987654321-07:00",
        ),
    ]


# The GGUF import's template has no tool section, so Ollama reports no "tools" for it.
DEFAULT_CAPABILITIES = {
    model_key("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"): ("completion",)
}


def check_capabilities(
    name: str, capabilities: tuple[str, ...], payload: dict[str, Any], chat: bool
) -> bool:
    """Refuse what the model cannot do, as Ollama does before loading it; True if it thinks."""
    think = payload.get("think")
    if "thinking" in capabilities:
        thinks = think is None or think is True or think in THINK_LEVELS
    elif think is True or think in THINK_LEVELS:
        raise Refusal(400, f"{go_json(name)} does not support thinking")
    else:
        thinks = False
    if "completion" not in capabilities:
        raise Refusal(400, f"{go_json(name)} does not support {'chat' if chat else 'generate'}")
    if chat and payload.get("tools") and "tools" not in capabilities:
        raise Refusal(400, f"{go_json(name)} does not support tools")
    if not chat and payload.get("suffix") and "insert" not in capabilities:
        raise Refusal(400, f"{go_json(name)} does not support insert")
    return thinks


def _parameter_count(entry: dict[str, Any]) -> int:
    size = entry["details"]["parameter_size"]
    scale = {"B": 1_000_000_000, "M": 1_000_000}.get(size[-1:], 1)
    try:
        return int(float(size[:-1]) * scale)
    except ValueError:
        return 0


def show_answer(
    entry: dict[str, Any],
    traits: tuple[tuple[str, ...], int, int],
    parameters: dict[str, int] | None = None,
) -> dict[str, Any]:
    """`/api/show`: the model's details, `model_info` and `capabilities`; `parameters` is the
    Modelfile's PARAMETER lines as Ollama prints them (name padded to 30 columns, then value)."""
    capabilities, context_length, embedding_length = traits
    family = entry["details"]["family"]
    lines = [f"{name:<30} {value}" for name, value in (parameters or {}).items()]
    return {
        "license": "Stand-in license",
        "modelfile": f'# Modelfile generated by "ollama show"\nFROM {entry["name"]}\n',
        "parameters": "\n".join([*lines, f'{"stop":<30} "<|eot_id|>"']),
        "template": "{{ .Prompt }}",
        "details": entry["details"],
        "model_info": {
            "general.architecture": family,
            "general.file_type": 15,
            "general.parameter_count": _parameter_count(entry),
            "general.quantization_version": 2,
            f"{family}.context_length": context_length,
            f"{family}.embedding_length": embedding_length,
        },
        "capabilities": list(capabilities),
        "modified_at": entry["modified_at"],
    }


def ps_entry(entry: dict[str, Any], expires: float, num_ctx: int) -> dict[str, Any]:
    """One `/api/ps` entry: a loaded model, when it unloads, and its context window."""
    return {
        "name": entry["name"],
        "model": entry["model"],
        "size": entry["size"],
        "digest": entry["digest"],
        "details": entry["details"],
        "expires_at": local_timestamp(int(expires * 1_000_000_000)),
        "size_vram": entry["size"],
        "context_length": num_ctx,
    }
