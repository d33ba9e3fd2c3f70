"""ApiError, the one place that builds OpenAI errors, and the one that renders them.

Every non-2xx answer a client sees is ``{"error": {"message", "type", "param", "code"}}``:

======  =======================  ===================================================
status  type                     code (clients match on it)
======  =======================  ===================================================
400     invalid_request_error    invalid_json, invalid_content_type, invalid_type,
                                 invalid_value, missing_required_parameter,
                                 unknown_parameter, unsupported_parameter,
                                 unsupported_value, invalid_image_url,
                                 array_above_max_length (more than MAX_MESSAGES messages),
                                 ollama_bad_request (Ollama refused the request),
                                 invalid_body (a broken chunked body, one cut short),
                                 previous_response_not_found (param previous_response_id),
                                 context_length_exceeded (the prompt does not fit the
                                 context window; param messages, prompt or input)
401     invalid_request_error    invalid_api_key (missing or wrong; the message never says which)
403     invalid_request_error    permission_denied (a named key that is not an admin: /metrics,
                                 another key's usage)
404     invalid_request_error    model_not_found, unknown_url; null for a stored response
                                 that does not exist for this key
405     invalid_request_error    method_not_allowed
408     invalid_request_error    request_timeout (the body did not arrive within BODY_TIMEOUT)
413     invalid_request_error    request_too_large (over MAX_REQUEST_BYTES, or too many JSON
                                 values)
429     requests                 rate_limit_exceeded (RATE_LIMIT or the key's own limit, the
                                 key's requests at once, too many wrong keys from one address;
                                 Retry-After says when to retry)
429     insufficient_quota       insufficient_quota (the key's daily or monthly token budget is
                                 spent; ``x-should-retry: false``, the message says when it resets)
499     invalid_request_error    client_closed_request (for the access log only: the client has
                                 gone, and its Ollama call was cancelled)
500     server_error             internal_error (our bug; the traceback is logged, not sent)
502     server_error             upstream_error (Ollama answered with a failure)
503     server_error             ollama_unavailable (unreachable, or it hung up before answering),
                                 ollama_busy (its queue is full), store_unavailable (the store of
                                 responses or the usage ledger does not answer)
504     server_error             upstream_timeout (Ollama went silent for TIMEOUT seconds)
======  =======================  ===================================================

502, 503 and 504 are upstream failures (``is_upstream``: Ollama's, or the response store's):
the access log and metrics count them by code. Errors that happen after a stream has started
cannot change the status any more; the stream sends the same envelope as one SSE event
(``streaming``). This module has no side
effects and knows nothing of Flask: ``handlers`` registers the rendering with the app.

The SDKs retry 408, 409, 429 and every 5xx twice unless ``x-should-retry`` says otherwise, so
each 5xx says whether a retry can help:

===================  =====  ==============================================================
code                 retry  why
===================  =====  ==============================================================
internal_error       false  the same request takes the same path through our code again
upstream_error       false  Ollama answered with a failure (its 500: a runner that crashed or
                            could not load the model, a wrong option type; a 403; ...) or
                            with something that is not its JSON: it fails the same way again
ollama_unavailable   false  connection refused or timed out: Ollama is down or elsewhere,
                            which seconds of back-off will not change
ollama_unavailable   true   Ollama closed the connection before answering: it crashed or
                            restarted, and may be back
ollama_busy          true   its queue is full; ``Retry-After: 1``
store_unavailable    true   Redis or the SQLite file did not answer; it may in a moment
upstream_timeout     false  Ollama was already silent for TIMEOUT seconds; a retry waits again
===================  =====  ==============================================================

An error after a stream has started is an SSE event, which the SDKs raise without retrying.
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Response

UPSTREAM_STATUSES = (502, 503, 504)

_TYPE_BY_STATUS = {413: "invalid_request_error"}

# ApiError's ``headers`` for a 5xx: whether the SDKs' retries can help (table above).
RETRY_MAY_HELP = {"x-should-retry": "true"}
RETRY_CANNOT_HELP = {"x-should-retry": "false"}


class ApiError(Exception):
    """A failure to report to the client as an OpenAI error envelope.

    Raise it where the problem is detected; ``render_error`` turns it into the answer.
    ``headers`` carries hints such as ``Retry-After`` or ``x-should-retry``.
    """

    def __init__(
        self,
        status: int,
        message: str,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _default_type(status)
        self.param = param
        self.code = code
        # A copy: callers pass shared dicts such as RETRY_CANNOT_HELP.
        self.headers = dict(headers or {})

    @property
    def is_upstream(self) -> bool:
        """Whether Ollama failed (502, 503, 504), rather than the request or the gateway."""
        return self.status in UPSTREAM_STATUSES

    def to_dict(self) -> dict[str, Any]:
        """The envelope, as sent in a JSON body or in an SSE error event."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def _default_type(status: int) -> str:
    if status >= 500:
        return "server_error"
    return _TYPE_BY_STATUS.get(status, "invalid_request_error")


def render_error(error: ApiError) -> Response:
    """The HTTP answer for an ApiError raised before any byte of the body was sent."""
    response = Response(
        json.dumps(error.to_dict()), status=error.status, mimetype="application/json"
    )
    response.headers.update(error.headers)
    return response


def bad_request(message: str, param: str | None, code: str = "invalid_value") -> ApiError:
    """A 400 for a request the client must fix; OpenAI SDKs never retry it."""
    return ApiError(400, message, "invalid_request_error", param, code)


def context_length_exceeded(param: str | None, num_ctx: Any = None) -> ApiError:
    """The 400 OpenAI answers for a prompt longer than the model's context window; agents such
    as Codex CLI compact their history when they see this code. ``param`` names the field the
    prompt travels in (``messages``, ``prompt``, ``input``)."""
    window = f"of {num_ctx} tokens " if isinstance(num_ctx, int) else ""
    return ApiError(
        400,
        f"The input does not fit the model's context window {window}(Ollama: the input length "
        "exceeds the context length). Shorten the input, or ask for a larger window with "
        "options.num_ctx (the gateway's models file can set one per model).",
        "invalid_request_error",
        param,
        "context_length_exceeded",
    )


def internal_error() -> ApiError:
    """The 500 for a bug of ours: the traceback goes to the log, never to the client."""
    return ApiError(
        500,
        "The gateway hit an unexpected error; it has been logged.",
        code="internal_error",
        headers=RETRY_CANNOT_HELP,
    )


def client_closed_request() -> ApiError:
    """The client hung up before its answer was ready: nobody reads this 499 (nginx's code
    for it), but the access log and metrics count it, and the Ollama call was cancelled."""
    return ApiError(
        499,
        "The client closed the connection before the answer was ready.",
        code="client_closed_request",
    )


def model_not_found(model: str, alias_of: str | None = None) -> ApiError:
    """The 404 OpenAI clients expect for a model Ollama does not have.

    ``alias_of`` is the Ollama model that ``model`` names through MODEL_ALIASES, if any.
    """
    if alias_of is None:
        message = (
            f"The model '{model}' does not exist in Ollama. Pull it first: `ollama pull {model}`."
        )
    else:
        message = (
            f"The model '{model}' is an alias (MODEL_ALIASES) of the Ollama model '{alias_of}', "
            f"which does not exist in Ollama. Pull it first: `ollama pull {alias_of}`."
        )
    return ApiError(404, message, "invalid_request_error", "model", "model_not_found")


def permission_denied(message: str) -> ApiError:
    """The 403 for a key that may not do this (OpenAI SDKs: ``PermissionDeniedError``)."""
    return ApiError(403, message, "invalid_request_error", None, "permission_denied")


def rate_limited(message: str, retry_after: int) -> ApiError:
    """A 429 the SDKs retry after ``Retry-After`` seconds (they wait at most 60)."""
    return ApiError(
        429,
        message,
        "requests",
        None,
        "rate_limit_exceeded",
        headers={"Retry-After": str(max(1, retry_after))},
    )


def insufficient_quota(message: str) -> ApiError:
    """OpenAI's 429 for a spent budget: waiting seconds will not help, so the SDKs are told not
    to retry; ``message`` says which budget and when it resets."""
    return ApiError(
        429, message, "insufficient_quota", None, "insufficient_quota", headers=RETRY_CANNOT_HELP
    )


def store_unavailable(error: Exception) -> ApiError:
    """The 503 for a shared store (the SQLite file, Redis) that does not answer; it may soon."""
    return ApiError(
        503,
        f"{str(error)[:1].upper()}{str(error)[1:]}; try again shortly.",
        code="store_unavailable",
        headers=RETRY_MAY_HELP,
    )


def routing_error(status: int, method: str, path: str, allowed: list[str] | None) -> ApiError:
    """The error for a request no view took: an unknown URL (404), a wrong method (405)."""
    if status == 404:
        return ApiError(404, f"Invalid URL ({method} {path})", code="unknown_url")
    headers = {"Allow": ", ".join(allowed)} if allowed is not None else {}
    return ApiError(
        405,
        f"Method {method} is not allowed on {path}",
        code="method_not_allowed",
        headers=headers,
    )
