"""The Responses API's endpoints: create (streamed or not), retrieve, delete, and list a stored
response's input items. Thin views over schemas, translate.responses and the response store."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from flask import Blueprint, Response, request

from . import schemas
from .affinity import Affinity, conversation_key
from .auth import api_key_id
from .errors import ApiError, bad_request, store_unavailable
from .exchange import Exchange, start_exchange
from .response_store import ResponseStore, StoredResponse, StoreUnavailable
from .routes import (
    Gateway,
    bind_model,
    event_stream,
    events,
    gateway,
    json_body,
    json_response,
    model_as_asked,
    upstream_answers,
)
from .schemas.responses_items import is_item_reference
from .translate import responses, stored_items

log = logging.getLogger(__name__)

bp = Blueprint("responses", __name__)

MAX_PAGE = 100


@bp.post("/v1/responses")
def create_response() -> Response:
    """A model response, as one JSON object or as a stream of named server-sent events."""
    exchange = start_exchange("responses")
    gw = gateway()
    body = schemas.validate_responses_request(json_body(), max_items=gw.settings.max_messages)
    owner = api_key_id()
    body = _with_referenced_items(body, owner)
    chain = _conversation(body.get("previous_response_id"), owner)
    history = [item for link in chain for item in (*link.input_items, *link.output_items)]
    raw_input = body.get("input")
    schemas.check_function_outputs(history, raw_input if isinstance(raw_input, list) else [])
    call = bind_model(gw, body, "responses")
    plan = responses.plan(call.body, history, call.defaults, call.model)
    exchange.model, exchange.stream = plan.model, plan.stream
    # The stored response names the server of the last turn, for every worker and instance.
    affinity = Affinity(
        partial(conversation_key, plan.model, call.body, plan.payloads[0]),
        chain[-1].server if chain else None,
    )
    save = _saver(gw, plan, owner, exchange)
    with model_as_asked(plan.model, plan.payloads[0]["model"]), _prompt_is_input():
        if plan.stream:
            translator = plan.translator()
            # Stored before the last event goes out: a client may continue it at once.
            stream = events(
                gw, plan, translator, exchange, affinity, lambda: save(translator.response)
            )
            return event_stream(stream)
        answers = upstream_answers(gw, plan, exchange, affinity)
    response = plan.answer(answers)
    save(response)
    return json_response(response)


@bp.get("/v1/responses/<response_id>")
def retrieve_response(response_id: str) -> Response:
    """A stored response, as it was answered."""
    start_exchange("responses.retrieve")
    return json_response(_stored(response_id).response)


@bp.delete("/v1/responses/<response_id>")
def delete_response(response_id: str) -> Response:
    """Forget a stored response."""
    start_exchange("responses.delete")
    with _store() as store:
        deleted = store.delete(response_id, api_key_id())
    if not deleted:
        raise _not_found(response_id)
    return json_response({"id": response_id, "object": "response", "deleted": True})


@bp.get("/v1/responses/<response_id>/input_items")
def list_input_items(response_id: str) -> Response:
    """The items a stored response was made from (its conversation's, then its own input),
    newest first unless ``order=asc``; ``after`` and ``limit`` page through them."""
    start_exchange("responses.input_items")
    with _store() as store:
        chain = store.chain(response_id, api_key_id())
    if not chain:
        raise _not_found(response_id)
    earlier = [item for link in chain[:-1] for item in (*link.input_items, *link.output_items)]
    items = earlier + chain[-1].input_items
    limit, order, after = _page_arguments()
    if order == "desc":
        items = items[::-1]
    if after is not None:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise bad_request(f"after names no item of this response: {after!r}.", "after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
    )


@contextmanager
def _prompt_is_input() -> Iterator[None]:
    """A prompt that does not fit the context window names ``input``, where the Responses API
    carries it (Ollama's chat calls it messages)."""
    try:
        yield
    except ApiError as error:
        if error.code == "context_length_exceeded":
            error.param = "input"
        raise


def _conversation(previous_id: str | None, owner: str | None) -> list[StoredResponse]:
    """The stored responses a request continues, oldest first; none without
    ``previous_response_id``."""
    if previous_id is None:
        return []
    with _store() as store:
        chain = store.chain(previous_id, owner)
    if not chain:
        raise ApiError(
            400,
            f"Previous response with id '{previous_id}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return chain


def _with_referenced_items(body: dict[str, Any], owner: str | None) -> dict[str, Any]:
    """``body`` with each ``item_reference`` of its input replaced by the stored item it names,
    which the id says the stored response of (one load per response, under the caller's key)."""
    raw = body.get("input")
    if not isinstance(raw, list) or not any(map(is_item_reference, raw)):
        return body
    loaded: dict[str, StoredResponse | None] = {}
    resolved = []
    for index, item in enumerate(raw):
        if not is_item_reference(item):
            resolved.append(item)
            continue
        response_id = stored_items.response_id_of(item["id"])
        if response_id is not None and response_id not in loaded:
            with _store() as store:
                loaded[response_id] = store.load(response_id, owner)
        stored = loaded.get(response_id) if response_id is not None else None
        found = stored and stored_items.stored_item(
            [*stored.input_items, *stored.output_items], item["id"]
        )
        if not found:
            # The same answer for an unknown id, an expired or unstored one and another key's.
            raise bad_request(
                f"Item with id '{item['id']}' not found: no stored response of this API key "
                "holds it (items of a response made with store set to false are not kept).",
                f"input.[{index}].id",
            )
        resolved.append(found)
    return {**body, "input": resolved}


def _saver(
    gw: Gateway, plan: responses.ResponsesPlan, owner: str | None, exchange: Exchange
) -> Callable[[dict[str, Any] | None], None]:
    """What keeps a finished response, when the request asked for it (``store``)."""

    def save(response: dict[str, Any] | None) -> None:
        if response is None or not response["store"]:
            return
        stored = StoredResponse(
            id=response["id"],
            owner=owner,
            previous_id=response["previous_response_id"],
            created_at=response["created_at"],
            input_items=plan.input_items,
            output_items=response["output"],
            response=response,
            server=exchange.server,
        )
        try:
            gw.responses.save(stored)
        except StoreUnavailable as error:
            # The client has its answer; only a later retrieval or continuation will miss it.
            log.error("the response %s could not be stored: %s", response["id"], error)

    return save


def _stored(response_id: str) -> StoredResponse:
    with _store() as store:
        stored = store.load(response_id, api_key_id())
    if stored is None:
        raise _not_found(response_id)
    return stored


@contextmanager
def _store() -> Iterator[ResponseStore]:
    """The app's response store; its failure is a 503 the client may retry."""
    try:
        yield gateway().responses
    except StoreUnavailable as error:
        raise store_unavailable(error) from None


def _not_found(response_id: str) -> ApiError:
    # The same answer for an unknown id, an expired one and another key's.
    return ApiError(
        404, f"Response with id '{response_id}' not found.", "invalid_request_error", None, None
    )


def _page_arguments() -> tuple[int, str, str | None]:
    raw_limit = request.args.get("limit", "20")
    try:
        limit = int(raw_limit)
    except ValueError:
        raise bad_request(f"limit must be a whole number, got {raw_limit!r}.", "limit") from None
    if not 1 <= limit <= MAX_PAGE:
        raise bad_request(f"limit must be between 1 and {MAX_PAGE}, got {limit}.", "limit")
    order = request.args.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request("order must be 'asc' or 'desc'.", "order")
    return limit, order, request.args.get("after")
