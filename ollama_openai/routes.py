"""The OpenAI-compatible HTTP endpoints: thin views that validate, plan and answer."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from flask import Blueprint, Response, current_app, request

from . import schemas
from .auth import api_key_id
from .config import Settings
from .errors import ApiError, model_not_found
from .exchange import Exchange, start_exchange
from .model_names import find_model, resolve_model
from .pumps import UpstreamPumps, call_watched
from .request_body import read_json
from .response_store import ResponseStore
from .servers import OllamaServers
from .streaming import SSE_HEADERS, StreamTranslator, relay
from .translate import chat, completions, embeddings, models
from .translate.answers import Generation, GenerationPlan, total_usage
from .translate.options import SamplingDefaults

bp = Blueprint("openai", __name__)


@dataclass(frozen=True)
class Gateway:
    """What the views share: settings, the Ollama servers, sampling defaults, the store of
    responses, model aliases."""

    settings: Settings
    ollama: OllamaServers
    defaults: SamplingDefaults
    responses: ResponseStore
    aliases: Mapping[str, str] = field(default_factory=dict)

    def ollama_model(self, requested: str) -> str:
        """The Ollama model behind the name a client asked for."""
        return resolve_model(requested, self.aliases)


def gateway() -> Gateway:
    """The app's Gateway, set up by create_app."""
    gw: Gateway = current_app.extensions["ollama_openai"]
    return gw


@bp.get("/v1/models")
def list_models() -> Response:
    """List the models Ollama has installed, and the aliases that lead to one of them."""
    start_exchange("models.list")
    gw = gateway()
    return json_response(models.ollama_models_to_openai(gw.ollama.tags(), gw.aliases))


@bp.get("/v1/models/<path:model>")
def retrieve_model(model: str) -> Response:
    """Describe one model or alias; ids hold ':' and '/', hence the path converter."""
    start_exchange("models.retrieve")
    gw = gateway()
    target = gw.ollama_model(model)
    entry = find_model(gw.ollama.tags(), target)
    if entry is None:
        raise model_not_found(model, alias_of=None if target == model else target)
    return json_response(models.model_entry(entry, model_id=model))


@bp.post("/v1/chat/completions")
def chat_completions() -> Response:
    """Chat completion (n choices), as one JSON answer or as a stream of server-sent events."""
    exchange = start_exchange("chat.completions")
    gw = gateway()
    body = schemas.validate_chat_request(
        json_body(), max_messages=gw.settings.max_messages, max_n=gw.settings.max_n
    )
    return _generate(gw, chat.plan(body, gw.defaults, gw.ollama_model(body["model"])), exchange)


@bp.post("/v1/completions")
def legacy_completions() -> Response:
    """Legacy text completion (each prompt n times), streamed or not."""
    exchange = start_exchange("completions")
    gw = gateway()
    body = schemas.validate_completion_request(json_body(), max_n=gw.settings.max_n)
    target = gw.ollama_model(body["model"])
    return _generate(gw, completions.plan(body, gw.defaults, target), exchange)


@bp.post("/v1/embeddings")
def create_embeddings() -> Response:
    """Embeddings of a string or a list of strings, as float arrays or base64."""
    exchange = start_exchange("embeddings")
    gw = gateway()
    body = schemas.validate_embedding_request(json_body())
    plan = embeddings.plan(body, gw.ollama_model(body["model"]))
    exchange.model = plan.model
    with model_as_asked(plan.model, plan.payload["model"]):
        answer = call_watched(
            partial(gw.ollama.post, plan.path, plan.payload, on_server=exchange.note_server),
            client_socket(),
        )
    result = plan.answer(answer)
    exchange.record_usage(result["usage"])
    return json_response(result)


@bp.get("/health")
def health() -> Response:
    """Whether Ollama answers (one server at least); 503 with the reasons when none does. With
    keys on, callers without a valid key learn only healthy or not: the servers' addresses,
    versions and errors are for the gateway's users."""
    gw = gateway()
    report = gw.ollama.health()
    status = 200 if report["status"] == "healthy" else 503
    if gw.settings.api_keys and api_key_id() is None:
        report = {"status": report["status"], "ollama": report["ollama"]}
    return json_response({**report, "api": "openai-compatible"}, status=status)


def _generate(gw: Gateway, plan: GenerationPlan, exchange: Exchange) -> Response:
    """Run a generation plan: stream its answer, or wait for every choice and answer once."""
    exchange.model = plan.model
    exchange.stream = plan.stream
    with model_as_asked(plan.model, plan.payloads[0]["model"]):
        if plan.stream:
            return event_stream(events(gw, plan, plan.translator(), exchange))
        answers = upstream_answers(gw, plan, exchange)
    return json_response(plan.answer(answers))


def upstream_answers(
    gw: Gateway, plan: Generation, exchange: Exchange, prefer: str | None = None
) -> list[dict[str, Any]]:
    """The non-streamed Ollama answers of a plan, one per payload; usage is recorded. A client
    that hangs up meanwhile cancels the calls (a 499)."""
    post_all = partial(
        gw.ollama.post_all, plan.path, plan.payloads, on_server=exchange.note_server, prefer=prefer
    )
    answers = call_watched(post_all, client_socket())
    exchange.first_token_at = time.monotonic()
    exchange.record_usage(total_usage(answers))
    return answers


def events(
    gw: Gateway,
    plan: Generation,
    translator: StreamTranslator,
    exchange: Exchange,
    prefer: str | None = None,
    on_end: Callable[[], None] | None = None,
) -> Iterator[bytes]:
    """The SSE events of a plan's streamed answer; fails with the upstream's own error while
    Ollama has not begun to answer within KEEPALIVE_INTERVAL. ``on_end``: see ``relay``."""
    keepalive = gw.settings.keepalive_interval
    open_streams = [
        partial(gw.ollama.stream, plan.path, payload, exchange.note_server, prefer)
        for payload in plan.payloads
    ]
    pumps = UpstreamPumps(open_streams)
    pumps.wait_opened(keepalive)
    return relay(pumps, translator, keepalive, exchange, client_socket(), on_end)


def client_socket() -> socket.socket | None:
    """The client's connection, when the server exposes it (gunicorn), to watch for hang-ups."""
    client: socket.socket | None = request.environ.get("gunicorn.socket")
    return client


def event_stream(events: Iterator[bytes]) -> Response:
    """A text/event-stream answer that proxies do not buffer."""
    return Response(events, mimetype="text/event-stream", headers=SSE_HEADERS)


def json_body() -> Any:
    """The request's JSON body, read within MAX_REQUEST_BYTES and BODY_TIMEOUT; a 4xx when it
    is not JSON or not a body the gateway takes (see ``request_body``)."""
    return read_json(request, gateway().settings.body_timeout)


@contextmanager
def model_as_asked(requested: str, target: str) -> Iterator[None]:
    """Make a 404 for an alias's Ollama model name the alias the client asked for."""
    try:
        yield
    except ApiError as error:
        if error.code != "model_not_found" or requested == target:
            raise
        raise model_not_found(requested, alias_of=target) from None


def json_response(body: dict[str, Any], status: int = 200) -> Response:
    """A JSON answer."""
    return Response(json.dumps(body), status=status, mimetype="application/json")
