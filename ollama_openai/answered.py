"""Every answer, described once as it leaves, for what records answers: the access log, the
metrics, the status page and the usage ledger.

Each of them registers an observer with ``@when_answered(app)``. One after-request step builds
the ``Answered`` record (endpoint, status, key, timings, the Exchange) and calls each observer
with it and the response; what an observer returns runs once the answer has closed (a stream's
last byte sent), from one ``call_on_close``. Before issue 18 each module read the request, the
key and the Exchange again and registered a closing callback of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, g, request

from .auth import key_name
from .exchange import Exchange, current_exchange, request_started
from .hooks import after_request, before_request

# Called as an answer leaves; what it returns (if anything) runs when the answer has closed.
Observer = Callable[["Answered", Response], Callable[[], Any] | None]


@dataclass(frozen=True, slots=True)
class Answered:
    """A request and its answer as it leaves. A stream's Exchange is still being filled in:
    read it when the answer has closed."""

    # The view's name ("openai.chat_completions"); None for a path with no route.
    endpoint: str | None
    # The route ("/v1/chat/completions"); "unknown" for a path with none, so that a scanner's
    # guesses do not each become a label or a line of their own.
    rule: str
    method: str
    path: str
    client: str | None
    # The name of the request's key (its fingerprint for a key without one); None, keys off.
    key: str | None
    request_id: str | None
    status: int
    # time.monotonic() at the request's arrival.
    started: float
    streaming: bool
    exchange: Exchange | None


def when_answered(app: Flask) -> Callable[[Observer], Observer]:
    """A decorator: call the observer with every request's ``Answered`` as it leaves."""
    observers: list[Observer] | None = app.extensions.get("answer_observers")
    if observers is None:
        observers = app.extensions["answer_observers"] = []
        before_request(app)(_start_clock)
        after_request(app)(_Leaving(observers))

    def register(observer: Observer) -> Observer:
        observers.append(observer)
        return observer

    return register


def _start_clock() -> None:
    # The first step of all (see create_app's order): a refused request is timed too.
    request_started()


class _Leaving:
    """The after-request step: one record, one closing callback, for every observer."""

    def __init__(self, observers: list[Observer]) -> None:
        self.observers = observers

    def __call__(self, response: Response) -> Response:
        # The request itself, not its proxy: six reads, one lookup.
        current = request._get_current_object()  # type: ignore[attr-defined]
        rule = current.url_rule
        answered = Answered(
            endpoint=current.endpoint,
            rule=rule.rule if rule is not None else "unknown",
            method=current.method,
            path=current.path,
            client=current.remote_addr,
            key=key_name(),
            request_id=g.get("request_id"),
            status=response.status_code,
            started=request_started(),
            streaming=response.is_streamed and response.mimetype == "text/event-stream",
            exchange=current_exchange(),
        )
        closers = [
            closer
            for closer in (observer(answered, response) for observer in self.observers)
            if closer is not None
        ]
        if closers:
            # The last registered first, as separate call_on_close callbacks used to run.
            response.call_on_close(lambda: [closer() for closer in reversed(closers)])
        return response
