"""The hook chain: what runs before and after every request, one Flask hook for each run of
steps.

Each feature module adds its steps with ``@before_request(app)`` and ``@after_request(app)``,
and only when the feature is on (decided once in ``create_app``
from Settings). Steps added one after another share one Flask hook, which calls them in the
order Flask would have: before steps as added, after steps in reverse. A hook added in between
by a library (flask-cors's, Flask's own) starts a new run, so it keeps its place in the order.
Flask pays a lookup and an ``ensure_sync`` per hook and per request; a chain pays them once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response

BeforeStep = Callable[[], Any]
AfterStep = Callable[[Response], Response]


def before_request(app: Flask) -> Callable[[BeforeStep], BeforeStep]:
    """A decorator: run the step before every request, after the steps added so far; as
    Flask's ``before_request``, a step that returns something other than None answers."""
    return lambda step: _add_before(app, step)


def after_request(app: Flask) -> Callable[[AfterStep], AfterStep]:
    """A decorator: run the step on every response, before the steps added so far (Flask's
    order for its ``after_request``)."""
    return lambda step: _add_after(app, step)


def _add_before(app: Flask, step: BeforeStep) -> BeforeStep:
    hooks = app.before_request_funcs.setdefault(None, [])
    last = hooks[-1] if hooks else None
    if isinstance(last, _BeforeChain):
        last.steps.append(step)
    else:
        app.before_request(_BeforeChain([step]))
    return step


def _add_after(app: Flask, step: AfterStep) -> AfterStep:
    hooks = app.after_request_funcs.setdefault(None, [])
    last = hooks[-1] if hooks else None
    if isinstance(last, _AfterChain):
        last.steps.insert(0, step)
    else:
        app.after_request(_AfterChain([step]))
    return step


class _BeforeChain:
    def __init__(self, steps: list[BeforeStep]) -> None:
        self.steps = steps

    def __call__(self) -> Any:
        for step in self.steps:
            answer = step()
            if answer is not None:
                return answer
        return None


class _AfterChain:
    def __init__(self, steps: list[AfterStep]) -> None:
        # In the order they run: the latest added first.
        self.steps = steps

    def __call__(self, response: Response) -> Response:
        for step in self.steps:
            response = step(response)
        return response
