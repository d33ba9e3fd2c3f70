"""What a /v1/completions (legacy text completion) body may hold."""

from __future__ import annotations

from typing import Any

from ..errors import ApiError, bad_request
from . import checks
from .chat_fields import (
    EXTRA_ROWS,
    LOGIT_BIAS,
    MODEL,
    NO_EFFECT,
    NO_EFFECT_FIELDS,
    SAMPLING_ROWS,
    STREAM_ROWS,
)
from .fields import FieldTable, honoured, mapped, refused

# The legacy API's limit on alternatives per token.
MAX_COMPLETION_LOGPROBS = 5

COMPLETION_TABLE = FieldTable(
    endpoint="/v1/completions",
    fields={
        "model": MODEL,
        "prompt": mapped(
            "A string or a list of strings: one choice per prompt, each `n` times (prompt "
            "`i`'s answers are choices `i*n` to `i*n+n-1`); prompts times `n` may not exceed "
            "`MAX_N`. Token-array prompts are refused: Ollama tokenizes itself."
        ),
        "suffix": mapped("Ollama `suffix` (fill-in-the-middle, models with `insert`)."),
        "echo": honoured("Each choice's text starts with its prompt."),
        "logprobs": mapped(
            "0-5 alternatives per token: `tokens`, `token_logprobs`, `top_logprobs`, "
            "`text_offset`; not with `echo` (Ollama has no log probabilities for the prompt)."
        ),
        "n": honoured("1 to `MAX_N` generations per prompt, run concurrently."),
        **STREAM_ROWS,
        **SAMPLING_ROWS,
        **EXTRA_ROWS,
        **dict.fromkeys(NO_EFFECT_FIELDS, NO_EFFECT),
        "best_of": refused("Ollama generates each choice once; use `n`.", 1),
        "logit_bias": LOGIT_BIAS,
    },
)


def validate_completion_request(body: Any, *, max_n: int) -> dict[str, Any]:
    """Check a /v1/completions body; return it unchanged when it is valid."""
    body = checks.object_body(body)
    COMPLETION_TABLE.check(body)
    checks.model(body)
    prompts = checks.texts(body.get("prompt"), "prompt", allow_empty=True)
    checks.optional(body, "suffix", str, "a string")
    checks.optional(body, "echo", bool, "a boolean")
    checks.sampling(body, COMPLETION_TABLE)
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
