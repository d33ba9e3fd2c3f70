"""Running one call per item at once: n > 1 generations, reads and probes of every server.

Each call runs in its own greenlet under gevent (gunicorn's workers), in a thread without it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .pumps import patched_gevent

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


def concurrently(call: Callable[[_Item], _Result], items: Sequence[_Item]) -> list[_Result]:
    """``call`` for every item at once, each in its own greenlet (a thread without gevent);
    results in order, the first failure raised once all have ended. Killed while waiting (the
    client hung up), it kills the calls too, so their connections to Ollama close."""
    if len(items) == 1:
        return [call(items[0])]
    gevent = patched_gevent()
    if gevent is None:
        with ThreadPoolExecutor(max_workers=len(items)) as pool:
            futures = [pool.submit(call, item) for item in items]
        return [future.result() for future in futures]
    calls = [gevent.spawn(_outcome, call, item) for item in items]
    try:
        gevent.joinall(calls)
    except BaseException:
        gevent.killall(calls, block=False)
        raise
    outcomes = [greenlet.value for greenlet in calls]
    for succeeded, value in outcomes:
        if not succeeded:
            raise value
    return [value for _, value in outcomes]


def _outcome(call: Callable[[_Item], _Result], item: _Item) -> tuple[bool, Any]:
    # A failure is returned, not raised: gevent would print the traceback of a greenlet that
    # dies of one.
    try:
        return True, call(item)
    except Exception as error:
        return False, error
