"""What a /v1/completions (legacy text completion) body may hold."""

from __future__ import annotations

from typing import Any

from ..errors import ApiError, bad_request
from . import checks

# The legacy API's limit on alternatives per token.
MAX_COMPLETION_LOGPROBS = 5

COMPLETION_FIELDS = frozenset(
    {
        "model",
        "prompt",
        "suffix",
        "echo",
        "logprobs",
        "stream",
        "stream_options",
        *checks.SAMPLING_FIELDS,
        *checks.OLLAMA_EXTRAS,
    }
)
COMPLETION_REFUSED_UNLESS_DEFAULT: dict[str, tuple[Any, ...]] = {
    "best_of": (1,),
    "logit_bias": ({},),
}


def validate_completion_request(body: Any, *, max_n: int) -> dict[str, Any]:
    """Check a /v1/completions body; return it unchanged when it is valid."""
    body = checks.object_body(body)
    checks.check_fields(body, COMPLETION_FIELDS, COMPLETION_REFUSED_UNLESS_DEFAULT)
    checks.model(body)
    prompts = checks.texts(body.get("prompt"), "prompt", allow_empty=True)
    checks.optional(body, "suffix", str, "a string")
    checks.optional(body, "echo", bool, "a boolean")
    checks.sampling(body)
    checks.integer(body, "n", 1, max_n)
    checks.integer(body, "logprobs", 0, MAX_COMPLETION_LOGPROBS)
    if body.get("logprobs") is not None and body.get("echo"):
        # OpenAI would score the prompt's tokens too; Ollama scores only what it generates.
        raise ApiError(
            400,
            "logprobs with echo is not supported: Ollama has no log probabilities for the "
            "prompt's tokens.",
            param="logprobs",
            code="unsupported_parameter",
        )
    # Each prompt is answered n times, each answer one upstream generation.
    if len(prompts) * (body.get("n") or 1) > max_n:
        raise bad_request(
            f"This request asks for {len(prompts)} prompts x n={body.get('n') or 1} "
            f"completions; the gateway runs at most {max_n} per request (MAX_N).",
            "n" if body.get("n") else "prompt",
        )
    return body
