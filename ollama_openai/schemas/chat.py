"""What a /v1/chat/completions body may hold."""

from __future__ import annotations

from typing import Any

from ..errors import bad_request
from . import checks
from .chat_fields import CHAT_TABLE
from .messages import messages
from .tools import tools

# The values of the SDK's ReasoningEffort; translate.options maps each to an Ollama `think`.
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
# Alternatives per token Ollama can list.
MAX_TOP_LOGPROBS = 20


def validate_chat_request(body: Any, *, max_messages: int, max_n: int) -> dict[str, Any]:
    """Check a /v1/chat/completions body; return it unchanged when it is valid."""
    body = checks.object_body(body)
    CHAT_TABLE.check(body)
    checks.model(body)
    messages(body, max_messages, CHAT_TABLE)
    checks.sampling(body, CHAT_TABLE)
    checks.integer(body, "n", 1, max_n)
    tools(body)
    checks.optional(body, "logprobs", bool, "a boolean")
    checks.integer(body, "top_logprobs", 0, MAX_TOP_LOGPROBS)
    if body.get("top_logprobs") is not None and body.get("logprobs") is not True:
        raise bad_request("top_logprobs requires logprobs to be true.", "top_logprobs")
    _response_format(body.get("response_format"))
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        raise bad_request(
            f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}.", "reasoning_effort"
        )
    return body


def _response_format(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise checks.wrong_type("response_format", "an object", value)
    kind = value.get("type")
    if kind in ("text", "json_object"):
        return
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise checks.wrong_type("response_format.json_schema", "an object with a schema", spec)
        return
    raise bad_request(
        "response_format.type must be 'text', 'json_object' or 'json_schema'.",
        "response_format.type",
    )
