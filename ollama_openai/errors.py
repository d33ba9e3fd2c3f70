"""ApiError and the one place that renders OpenAI error envelopes.

Every non-2xx answer a client sees is ``{"error": {"message", "type", "param", "code"}}``:

======  =======================  ===================================================
status  type                     code (clients match on it)
======  =======================  ===================================================
400     invalid_request_error    invalid_json, invalid_type, missing_required_parameter,
                                 invalid_value, unknown_parameter, unsupported_parameter,
                                 array_above_max_length (more than MAX_MESSAGES messages)
401     invalid_request_error    invalid_api_key (missing or wrong; the message never says which)
404     invalid_request_error    model_not_found, unknown_url
405     invalid_request_error    method_not_allowed
413     invalid_request_error    request_too_large
429     requests                 rate_limit_exceeded (RATE_LIMIT; Retry-After says when to retry)
500     server_error             internal_error (our bug; the traceback is logged, not sent)
502     server_error             upstream_error (Ollama answered with a failure)
503     server_error             ollama_unavailable (unreachable), ollama_busy (its queue is full)
504     server_error             upstream_timeout (Ollama went silent for TIMEOUT seconds)
======  =======================  ===================================================

502, 503 and 504 are upstream failures: their code is recorded on the request's Exchange as
``upstream_error``, for the access log and metrics.

Errors that happen after a stream has started cannot change the status any more; they are
sent as one SSE event whose data is the same envelope (see ``sse_error_event``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import has_request_context
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from .exchange import current_exchange

log = logging.getLogger(__name__)

UPSTREAM_STATUSES = (502, 503, 504)

_TYPE_BY_STATUS = {413: "invalid_request_error"}


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
        self.headers = headers or {}

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


def bad_request(message: str, param: str | None, code: str = "invalid_value") -> ApiError:
    """A 400 for a request the client must fix; OpenAI SDKs never retry it."""
    return ApiError(400, message, "invalid_request_error", param, code)


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
    if error.status in UPSTREAM_STATUSES and has_request_context():
        exchange = current_exchange()
        if exchange is not None:
            exchange.upstream_error = error.code
    return response


def sse_error_event(error: ApiError) -> bytes:
    """The SSE event that reports a failure after the stream's 200 status was sent."""
    return f"data: {json.dumps(error.to_dict())}\n\n".encode()


def _from_http_exception(exc: HTTPException) -> ApiError:
    # Routing errors (unknown URL, wrong method, body too large) come from werkzeug, not our
    # views, so they are translated here to keep every answer an OpenAI envelope.
    from flask import request

    status = exc.code or 500
    if status == 404:
        message = f"Invalid URL ({request.method} {request.path})"
        return ApiError(404, message, code="unknown_url")
    if status == 405:
        message = f"Method {request.method} is not allowed on {request.path}"
        headers = (
            {"Allow": ", ".join(exc.valid_methods or [])} if hasattr(exc, "valid_methods") else {}
        )
        return ApiError(405, message, code="method_not_allowed", headers=headers)
    if status == 413:
        return ApiError(413, "The request body is too large.", code="request_too_large")
    return ApiError(status, exc.description or exc.name, code=exc.name.lower().replace(" ", "_"))


def _from_unexpected(exc: Exception) -> Response:
    log.exception("unexpected error while handling a request")
    return render_error(
        ApiError(
            500, "The gateway hit an unexpected error; it has been logged.", code="internal_error"
        )
    )


def register_error_handlers(app: Any) -> None:
    """Make every error the app produces, ours or werkzeug's, an OpenAI envelope."""
    app.register_error_handler(ApiError, render_error)
    app.register_error_handler(HTTPException, lambda exc: render_error(_from_http_exception(exc)))
    app.register_error_handler(Exception, _from_unexpected)


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
