"""What a /v1/embeddings body may hold."""

from __future__ import annotations

from typing import Any

from ..errors import bad_request
from . import checks
from .chat_fields import MODEL, NO_EFFECT, NO_EFFECT_FIELDS, OLLAMA_EXTRA
from .fields import FieldTable, honoured, mapped

# OpenAI's own limit on the inputs of one embeddings request.
MAX_EMBEDDING_INPUTS = 2048

EMBEDDING_TABLE = FieldTable(
    endpoint="/v1/embeddings",
    fields={
        "model": MODEL,
        "input": mapped(
            f"A string or a list of up to {MAX_EMBEDDING_INPUTS} non-empty strings; "
            "`data[i].index` follows the input order. Token-array input is refused."
        ),
        "encoding_format": honoured(
            "`float`, or `base64`: little-endian float32, what the Python and JavaScript SDKs "
            "ask for by default and decode themselves."
        ),
        "dimensions": mapped(
            "Ollama `dimensions` (it truncates and normalises; the gateway cuts and normalises "
            "again should a server send longer vectors)."
        ),
        "keep_alive": OLLAMA_EXTRA,
        "options": OLLAMA_EXTRA,
        "truncate": honoured(
            "Ollama's `truncate` (the SDK's `extra_body`): `false` makes an input longer than "
            "the context window a 400 `context_length_exceeded` (param `input`); `true` lets "
            "Ollama cut it. Unset: the model's `context_overflow` (models file), else "
            "`CONTEXT_OVERFLOW`."
        ),
        **dict.fromkeys(NO_EFFECT_FIELDS, NO_EFFECT),
    },
)


def validate_embedding_request(body: Any) -> dict[str, Any]:
    """Check a /v1/embeddings body; return it unchanged when it is valid."""
    body = checks.object_body(body)
    EMBEDDING_TABLE.check(body)
    checks.model(body)
    inputs = checks.texts(body.get("input"), "input", allow_empty=False)
    if len(inputs) > MAX_EMBEDDING_INPUTS:
        raise bad_request(
            f"input holds {len(inputs)} items; at most {MAX_EMBEDDING_INPUTS} are allowed.",
            "input",
        )
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        raise bad_request("encoding_format must be 'float' or 'base64'.", "encoding_format")
    checks.integer(body, "dimensions", 1)
    checks.optional(body, "options", dict, "an object of Ollama options")
    checks.optional(
        body, "keep_alive", (str, int), "a duration such as '5m' or a number of seconds"
    )
    checks.optional(body, "truncate", bool, "a boolean")
    return body
