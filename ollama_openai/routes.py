"""The OpenAI-compatible HTTP endpoints: thin views that validate, plan and answer."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from . import schemas
from .affinity import Affinity, conversation_key
from .auth import api_key_id, may_use
from .config import Settings
from .errors import ApiError, model_not_found
from .exchange import Exchange, current_exchange, start_exchange
from .json_codec import encode_json
from .model_info import ModelFactsCache
from .model_names import canonical_model_name, entry_name, find_model, resolve_model
from .models_file import ModelCatalog
from .pumps import UpstreamPumps, call_watched
from .request_body import read_json
from .response_store import ResponseStore
from .routing import public_url
from .servers import OllamaServers
from .streaming import SSE_HEADERS, StreamTranslator, relay
from .translate import chat, completions, embeddings, models
from .translate.answers import Generation, GenerationPlan, total_usage
from .translate.models import ModelDetails, ModelFacts
from .translate.options import SamplingDefaults
from .upstream_reader import UpstreamReader
from .usage import UsageStore

log = logging.getLogger(__name__)

bp = Blueprint("openai", __name__)
# Tells a client which of its values the operator's policy clamped (``max_tokens=4096``).
CLAMPED_HEADER = "x-ollama-openai-clamped"
# Tell a client which Ollama server answered (its URL without any password; SERVER_HEADER=false
# leaves it out), and how long its request waited for a slot there.
SERVER_HEADER = "x-ollama-server"
QUEUE_TIME_HEADER = "x-queue-time-ms"


@dataclass(frozen=True)
class Gateway:
    """What the views share: settings, the Ollama servers, sampling defaults, the store of
    responses, the usage ledger, model aliases."""

    settings: Settings
    ollama: OllamaServers
    defaults: SamplingDefaults
    responses: ResponseStore
    usage: UsageStore
    aliases: Mapping[str, str] = field(default_factory=dict)
    # The models file: settings and policy per model and alias.
    models: ModelCatalog = field(default_factory=ModelCatalog)
    # What each model can do (/api/show), cached; made from ``ollama``.
    facts: ModelFactsCache = field(init=False)

    def __post_init__(self) -> None:
        facts = ModelFactsCache(self.ollama, self.settings.model_refresh_interval)
        object.__setattr__(self, "facts", facts)

    def ollama_model(self, requested: str) -> str:
        """The Ollama model behind the name a client asked for; a model this request's key may
        not use is the 404 of a model that does not exist, so a key learns nothing of it."""
        target = resolve_model(requested, self.aliases)
        if not may_use(requested, target):
            raise model_not_found(requested)
        return target

    def details(
        self, model_id: str, entry: dict[str, Any], facts: ModelFacts | None
    ) -> ModelDetails:
        """What /v1/models tells of ``model_id`` (a model or an alias) listed by ``entry``."""
        num_ctx = self.models.profile(model_id).entry.options.get("num_ctx")
        return ModelDetails(facts, num_ctx, self.ollama.loaded_on(entry_name(entry)))


@dataclass(frozen=True)
class ModelCall:
    """A validated request bound to its model: the body as the operator's policy lets it
    through, the Ollama model it runs on, and the defaults it gets (``translate.options``)."""

    body: dict[str, Any]
    model: str
    defaults: SamplingDefaults


def bind_model(gw: Gateway, body: dict[str, Any], endpoint: str) -> ModelCall:
    """Apply the policy of the model ``body`` names and check it can do what the body asks.

    What the policy clamped is logged and told in the CLAMPED_HEADER of the answer.
    """
    # A model the key may not use stops here, as one that does not exist.
    gw.ollama_model(body["model"])
    profile = gw.models.profile(body["model"])
    body, clamped = schemas.apply_policy(body, profile.policy)
    if clamped:
        g.clamped = clamped
        log.info(
            "request_id=%s model=%s clamped by the models file's policy: %s",
            g.get("request_id"),
            body["model"],
            ", ".join(clamped),
        )
    needed = schemas.needed_capabilities(body, endpoint)
    if needed:
        facts = gw.facts.facts(profile.model)
        capabilities = None if facts is None else facts.capabilities
        schemas.check_capabilities(needed, capabilities, body["model"])
    return ModelCall(body, profile.model, gw.defaults.for_model(profile.entry, profile.policy))


def tell_clamped(response: Response) -> Response:
    """Every answer to a request the policy clamped says so (see ``bind_model``)."""
    clamped = g.get("clamped")
    if clamped:
        response.headers.add(CLAMPED_HEADER, ", ".join(clamped))
    return response


def tell_routing(response: Response) -> Response:
    """Every answer that called Ollama says where, and after how long a wait; a stream still
    waiting for its slot when its headers left says neither."""
    exchange = current_exchange()
    if exchange is None:
        return response
    if exchange.queued is not None:
        response.headers.add(QUEUE_TIME_HEADER, str(round(exchange.queued * 1000)))
    if exchange.server is not None and gateway().settings.server_header:
        response.headers.add(SERVER_HEADER, public_url(exchange.server))
    return response


def gateway() -> Gateway:
    """The app's Gateway, set up by create_app."""
    gw: Gateway = current_app.extensions["ollama_openai"]
    return gw


@bp.get("/v1/models")
def list_models() -> Response:
    """List the models Ollama has installed, and the aliases that lead to one of them, with
    what each can do and where it is loaded."""
    start_exchange("models.list")
    gw = gateway()
    tags = gw.ollama.tags()
    facts = gw.facts.facts_of(tags.get("models") or [])

    def describe(model_id: str, entry: dict[str, Any]) -> ModelDetails:
        return gw.details(model_id, entry, facts[canonical_model_name(entry_name(entry))])

    listed = models.ollama_models_to_openai(tags, gw.aliases, describe)
    # Only the models the key may use; an alias is judged by its name and its model's.
    listed["data"] = [
        entry
        for entry in listed["data"]
        if may_use(entry["id"], resolve_model(entry["id"], gw.aliases))
    ]
    return json_response(listed)


@bp.get("/v1/models/<path:model>")
def retrieve_model(model: str) -> Response:
    """Describe one model or alias; ids hold ':' and '/', hence the path converter."""
    start_exchange("models.retrieve")
    gw = gateway()
    target = gw.ollama_model(model)
    entry = find_model(gw.ollama.tags(), target)
    if entry is None:
        raise model_not_found(model, alias_of=None if target == model else target)
    facts = gw.facts.facts(entry_name(entry), entry.get("digest"))
    return json_response(models.model_entry(entry, model, gw.details(model, entry, facts)))


@bp.post("/v1/chat/completions")
def chat_completions() -> Response:
    """Chat completion (n choices), as one JSON answer or as a stream of server-sent events."""
    exchange = start_exchange("chat.completions")
    gw = gateway()
    body = schemas.validate_chat_request(
        json_body(), max_messages=gw.settings.max_messages, max_n=gw.settings.max_n
    )
    call = bind_model(gw, body, "chat")
    return _generate(gw, chat.plan(call.body, call.defaults, call.model), exchange, call.body)


@bp.post("/v1/completions")
def legacy_completions() -> Response:
    """Legacy text completion (each prompt n times), streamed or not."""
    exchange = start_exchange("completions")
    gw = gateway()
    body = schemas.validate_completion_request(json_body(), max_n=gw.settings.max_n)
    call = bind_model(gw, body, "completions")
    plan = completions.plan(call.body, call.defaults, call.model)
    return _generate(gw, plan, exchange, call.body)


@bp.post("/v1/embeddings")
def create_embeddings() -> Response:
    """Embeddings of a string or a list of strings, as float arrays or base64."""
    exchange = start_exchange("embeddings")
    gw = gateway()
    body = schemas.validate_embedding_request(json_body())
    call = bind_model(gw, body, "embeddings")
    plan = embeddings.plan(call.body, call.model, call.defaults)
    exchange.model = plan.model
    with model_as_asked(plan.model, plan.payload["model"]):
        post = partial(
            gw.ollama.post,
            plan.path,
            plan.payload,
            on_server=exchange.note_server,
            on_queued=exchange.note_queued,
        )
        answer = call_watched(post, client_socket())
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


def _generate(
    gw: Gateway, plan: GenerationPlan, exchange: Exchange, body: dict[str, Any]
) -> Response:
    """Run a generation plan: stream its answer, or wait for every choice and answer once."""
    exchange.model = plan.model
    exchange.stream = plan.stream
    affinity = Affinity(partial(conversation_key, plan.model, body, plan.payloads[0]))
    with model_as_asked(plan.model, plan.payloads[0]["model"]):
        if plan.stream:
            return event_stream(events(gw, plan, plan.translator(), exchange, affinity))
        answers = upstream_answers(gw, plan, exchange, affinity)
    return json_response(plan.answer(answers))


def upstream_answers(
    gw: Gateway, plan: Generation, exchange: Exchange, affinity: Affinity | None = None
) -> list[dict[str, Any]]:
    """The non-streamed Ollama answers of a plan, one per payload; usage is recorded. A client
    that hangs up meanwhile cancels the calls (a 499)."""
    post_all = partial(
        gw.ollama.post_all,
        plan.path,
        plan.payloads,
        on_server=exchange.note_server,
        affinity=affinity,
        on_queued=exchange.note_queued,
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
    affinity: Affinity | None = None,
    on_end: Callable[[], None] | None = None,
) -> Iterator[bytes]:
    """The SSE events of a plan's streamed answer; fails with the upstream's own error while
    Ollama has not begun to answer within KEEPALIVE_INTERVAL (a wait for a slot included: the
    relay's keep-alives cover the rest of it). ``on_end``: see ``relay``."""
    keepalive = gw.settings.keepalive_interval
    open_streams = [
        partial(
            gw.ollama.stream,
            plan.path,
            payload,
            exchange.note_server,
            affinity,
            on_queued=exchange.note_queued,
        )
        for payload in plan.payloads
    ]
    # One choice is read in the relay's greenlet; several need a pump each, read concurrently.
    pumps: UpstreamReader | UpstreamPumps
    if len(open_streams) == 1:
        pumps = UpstreamReader(open_streams[0])
    else:
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
    """A JSON answer, compact and in UTF-8 (``encode_json``)."""
    return Response(encode_json(body), status=status, mimetype="application/json")
