"""Flask's error handlers: every error the app produces, ours or werkzeug's, becomes an
OpenAI envelope, and the request's Exchange learns of an upstream failure here, in one place.
"""

from __future__ import annotations

import logging

from flask import Flask, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from .errors import ApiError, internal_error, render_error, routing_error
from .exchange import current_exchange

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """Register the handlers on the app: a blueprint's own would never see routing errors."""
    app.register_error_handler(ApiError, answer_error)
    app.register_error_handler(HTTPException, _from_http_exception)
    app.register_error_handler(Exception, _from_unexpected)


def answer_error(error: ApiError) -> Response:
    """The answer for an ApiError raised while handling a request."""
    exchange = current_exchange()
    if exchange is not None:
        exchange.note_error(error)
    return render_error(error)


def _from_http_exception(exc: HTTPException) -> Response:
    # Routing errors (unknown URL, wrong method, body too large) come from werkzeug, not our
    # views, so they are translated here to keep every answer an OpenAI envelope.
    status = exc.code or 500
    if status in (404, 405):
        allowed = getattr(exc, "valid_methods", None)
        return answer_error(routing_error(status, request.method, request.path, allowed))
    if status == 413:
        return answer_error(
            ApiError(413, "The request body is too large.", code="request_too_large")
        )
    return answer_error(
        ApiError(status, exc.description or exc.name, code=exc.name.lower().replace(" ", "_"))
    )


def _from_unexpected(exc: Exception) -> Response:
    log.exception("unexpected error while handling a request")
    return answer_error(internal_error())
