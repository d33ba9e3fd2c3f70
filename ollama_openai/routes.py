"""The OpenAI-compatible HTTP endpoints: thin views over schemas, translate and ollama."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, request

from . import schemas, translate
from .config import Settings
from .errors import ApiError, bad_request, model_not_found
from .exchange import Exchange, start_exchange
from .ollama import OllamaClient
from .streaming import SSE_HEADERS, StreamTranslator, UpstreamPump, relay

bp = Blueprint("openai", __name__)


@dataclass(frozen=True)
class Gateway:
    """What the views share: settings, the Ollama client and the sampling defaults."""

    settings: Settings
    ollama: OllamaClient
    defaults: translate.SamplingDefaults


def gateway() -> Gateway:
    """The app's Gateway, set up by create_app."""
    return current_app.extensions["ollama_openai"]


@bp.get("/v1/models")
def list_models() -> Response:
    """List the models Ollama has installed."""
    start_exchange("models.list")
    return _json(translate.ollama_models_to_openai(gateway().ollama.tags()))


@bp.get("/v1/models/<path:model>")
def retrieve_model(model: str) -> Response:
    """Describe one model; ids hold ':' and '/', hence the path converter."""
    start_exchange("models.retrieve")
    entry = translate.find_model(gateway().ollama.tags(), model)
    if entry is None:
        raise model_not_found(model)
    return _json(translate.model_entry(entry, model_id=model))


@bp.post("/v1/chat/completions")
def chat_completions() -> Response:
    """Chat completion, as one JSON answer or as a stream of server-sent events."""
    exchange = start_exchange("chat.completions")
    gw = gateway()
    body = schemas.validate_chat_request(_json_body(), gw.settings.max_messages)
    payload = translate.chat_request_to_ollama(body, gw.defaults)
    identity = _identity("chatcmpl", body, exchange)
    if payload["stream"]:
        return _stream(gw, "/api/chat", payload, translate.ChatStream(identity), exchange)
    answer = _answer(gw, "/api/chat", payload, exchange)
    return _json(
        translate.ollama_chat_to_openai(
            answer,
            completion_id=identity.completion_id,
            created=identity.created,
            model=identity.model,
        )
    )


@bp.post("/v1/completions")
def completions() -> Response:
    """Legacy text completion (prompt in, text out), streamed or not."""
    exchange = start_exchange("completions")
    gw = gateway()
    body = schemas.validate_completion_request(_json_body())
    payload = translate.completion_request_to_ollama(body, gw.defaults)
    identity = _identity("cmpl", body, exchange)
    echo = translate.completion_prompt(body) if body.get("echo") else ""
    if payload["stream"]:
        translator = translate.CompletionStream(identity, echo)
        return _stream(gw, "/api/generate", payload, translator, exchange)
    answer = _answer(gw, "/api/generate", payload, exchange)
    return _json(
        translate.ollama_generate_to_openai(
            answer,
            completion_id=identity.completion_id,
            created=identity.created,
            model=identity.model,
            echo=echo,
        )
    )


@bp.get("/health")
def health() -> Response:
    """Whether Ollama answers; 503 with the reason when it does not."""
    try:
        version = gateway().ollama.version()
    except ApiError as error:
        body = {
            "status": "unhealthy",
            "ollama": "disconnected",
            "reason": error.message,
            "api": "openai-compatible",
        }
        return _json(body, status=503)
    body = {
        "status": "healthy",
        "ollama": "connected",
        "ollama_version": version,
        "api": "openai-compatible",
    }
    return _json(body)


def _json_body() -> Any:
    if not request.is_json:
        raise bad_request(
            "The request body must be JSON, sent with Content-Type: application/json.",
            None,
            "invalid_content_type",
        )
    try:
        return json.loads(request.get_data())
    except (ValueError, RecursionError):
        raise bad_request(
            "We could not parse the JSON body of your request: it is not valid JSON.",
            None,
            "invalid_json",
        ) from None


def _answer(gw: Gateway, path: str, payload: dict[str, Any], exchange: Exchange) -> dict[str, Any]:
    answer = gw.ollama.post(path, payload)
    exchange.first_token_at = time.monotonic()
    exchange.record_usage(translate.usage(answer))
    return answer


def _stream(
    gw: Gateway,
    path: str,
    payload: dict[str, Any],
    translator: StreamTranslator,
    exchange: Exchange,
) -> Response:
    keepalive = gw.settings.keepalive_interval
    pump = UpstreamPump(lambda: gw.ollama.stream(path, payload))
    pump.wait_opened(keepalive)
    client = request.environ.get("gunicorn.socket")
    return _event_stream(relay(pump, translator, keepalive, exchange, client))


def _identity(prefix: str, body: dict[str, Any], exchange: Exchange) -> translate.StreamIdentity:
    exchange.model = body["model"]
    exchange.stream = bool(body.get("stream"))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    return translate.StreamIdentity(
        completion_id=translate.new_id(prefix),
        created=int(time.time()),
        model=body["model"],
        include_usage=include_usage,
    )


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _event_stream(events: Iterator[bytes]) -> Response:
    return Response(events, mimetype="text/event-stream", headers=SSE_HEADERS)
