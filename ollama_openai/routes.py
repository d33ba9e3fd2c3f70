"""The OpenAI-compatible HTTP endpoints: thin views over schemas, translate and ollama."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from flask import Blueprint, Response, current_app, request

from . import schemas, translate
from .config import Settings
from .errors import ApiError, bad_request, model_not_found
from .exchange import Exchange, start_exchange
from .servers import OllamaServers
from .streaming import SSE_HEADERS, StreamTranslator, UpstreamPumps, relay

bp = Blueprint("openai", __name__)


@dataclass(frozen=True)
class Gateway:
    """What the views share: settings, the Ollama servers, sampling defaults, model aliases."""

    settings: Settings
    ollama: OllamaServers
    defaults: translate.SamplingDefaults
    aliases: Mapping[str, str] = field(default_factory=dict)

    def ollama_model(self, requested: str) -> str:
        """The Ollama model behind the name a client asked for."""
        return translate.resolve_model(requested, self.aliases)


def gateway() -> Gateway:
    """The app's Gateway, set up by create_app."""
    return current_app.extensions["ollama_openai"]


@bp.get("/v1/models")
def list_models() -> Response:
    """List the models Ollama has installed, and the aliases that lead to one of them."""
    start_exchange("models.list")
    gw = gateway()
    return _json(translate.ollama_models_to_openai(gw.ollama.tags(), gw.aliases))


@bp.get("/v1/models/<path:model>")
def retrieve_model(model: str) -> Response:
    """Describe one model or alias; ids hold ':' and '/', hence the path converter."""
    start_exchange("models.retrieve")
    gw = gateway()
    target = gw.ollama_model(model)
    entry = translate.find_model(gw.ollama.tags(), target)
    if entry is None:
        raise model_not_found(model, alias_of=None if target == model else target)
    return _json(translate.model_entry(entry, model_id=model))


@bp.post("/v1/chat/completions")
def chat_completions() -> Response:
    """Chat completion (n choices), as one JSON answer or as a stream of server-sent events."""
    exchange = start_exchange("chat.completions")
    gw = gateway()
    body = schemas.validate_chat_request(
        _json_body(), max_messages=gw.settings.max_messages, max_n=gw.settings.max_n
    )
    target = gw.ollama_model(body["model"])
    payload = translate.chat_request_to_ollama(body, gw.defaults, target)
    payloads = translate.per_choice(payload, translate.choice_count(body))
    identity = _identity("chatcmpl", body, exchange)
    parallel_tool_calls = body.get("parallel_tool_calls") is not False
    with _model_as_asked(body["model"], target):
        if payload["stream"]:
            translator = translate.ChatStream(identity, len(payloads), parallel_tool_calls)
            return _stream(gw, "/api/chat", payloads, translator, exchange)
        answers = _answers(gw, "/api/chat", payloads, exchange)
    return _json(
        translate.ollama_chat_to_openai(
            answers,
            completion_id=identity.completion_id,
            created=identity.created,
            model=identity.model,
            parallel_tool_calls=parallel_tool_calls,
        )
    )


@bp.post("/v1/completions")
def completions() -> Response:
    """Legacy text completion (each prompt n times), streamed or not."""
    exchange = start_exchange("completions")
    gw = gateway()
    body = schemas.validate_completion_request(_json_body(), max_n=gw.settings.max_n)
    target = gw.ollama_model(body["model"])
    payloads = translate.completion_requests_to_ollama(body, gw.defaults, target)
    identity = _identity("cmpl", body, exchange)
    echoes = translate.completion_echoes(body)
    with _model_as_asked(body["model"], target):
        if payloads[0]["stream"]:
            translator = translate.CompletionStream(identity, len(payloads), echoes)
            return _stream(gw, "/api/generate", payloads, translator, exchange)
        answers = _answers(gw, "/api/generate", payloads, exchange)
    return _json(
        translate.ollama_generate_to_openai(
            answers,
            completion_id=identity.completion_id,
            created=identity.created,
            model=identity.model,
            echoes=echoes,
        )
    )


@bp.post("/v1/embeddings")
def embeddings() -> Response:
    """Embeddings of a string or a list of strings, as float arrays or base64."""
    exchange = start_exchange("embeddings")
    gw = gateway()
    body = schemas.validate_embedding_request(_json_body())
    exchange.model = body["model"]
    target = gw.ollama_model(body["model"])
    with _model_as_asked(body["model"], target):
        payload = translate.embedding_request_to_ollama(body, target)
        answer = gw.ollama.embed(payload, on_server=exchange.note_server)
    result = translate.ollama_embed_to_openai(
        answer,
        model=body["model"],
        encoding_format=body.get("encoding_format"),
        dimensions=body.get("dimensions"),
    )
    exchange.record_usage(result["usage"])
    return _json(result)


@bp.get("/health")
def health() -> Response:
    """Whether Ollama answers (one server at least); 503 with the reasons when none does."""
    report = gateway().ollama.health()
    status = 200 if report["status"] == "healthy" else 503
    return _json({**report, "api": "openai-compatible"}, status=status)


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


@contextmanager
def _model_as_asked(requested: str, target: str) -> Iterator[None]:
    """Make a 404 for an alias's Ollama model name the alias the client asked for."""
    try:
        yield
    except ApiError as error:
        if error.code != "model_not_found" or requested == target:
            raise
        raise model_not_found(requested, alias_of=target) from None


def _answers(
    gw: Gateway, path: str, payloads: Sequence[dict[str, Any]], exchange: Exchange
) -> list[dict[str, Any]]:
    answers = gw.ollama.post_all(path, payloads, on_server=exchange.note_server)
    exchange.first_token_at = time.monotonic()
    exchange.record_usage(translate.total_usage(answers))
    return answers


def _stream(
    gw: Gateway,
    path: str,
    payloads: Sequence[dict[str, Any]],
    translator: StreamTranslator,
    exchange: Exchange,
) -> Response:
    keepalive = gw.settings.keepalive_interval
    pumps = UpstreamPumps(
        [
            partial(gw.ollama.stream, path, payload, on_server=exchange.note_server)
            for payload in payloads
        ]
    )
    pumps.wait_opened(keepalive)
    client = request.environ.get("gunicorn.socket")
    return _event_stream(relay(pumps, translator, keepalive, exchange, client))


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
