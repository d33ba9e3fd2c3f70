"""What a /v1/embeddings body may hold."""

from __future__ import annotations

from typing import Any

from ..errors import bad_request
from . import checks

# OpenAI's own limit on the inputs of one embeddings request.
MAX_EMBEDDING_INPUTS = 2048

EMBEDDING_FIELDS = frozenset(
    {"model", "input", "encoding_format", "dimensions", "keep_alive", "options", "truncate"}
)


def validate_embedding_request(body: Any) -> dict[str, Any]:
    """Check a /v1/embeddings body; return it unchanged when it is valid."""
    body = checks.object_body(body)
    checks.check_fields(body, EMBEDDING_FIELDS, {})
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
