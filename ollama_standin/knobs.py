"""The knob: a setting a test turns on the stand-in, type-checked wherever it is set.

This module owns `Knob`, the descriptor behind every fault knob of `StandinState`: assignment
(`ollama.reply = "..."`), `configure()`, the constructor and `POST /_standin/config` all go
through `Knob.check`, so a wrong type fails where it is set rather than in the middle of an
answer. The values live in the stand-in's `_knobs`, under its lock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Knob:
    """A fault knob: a class attribute whose every assignment is checked as `configure()` checks.

    A wrong type raises ValueError; `extra_check` may refuse a value of the right type.
    """

    def __init__(
        self,
        default: Any,
        *types: type,
        extra_check: Callable[[Any], None] | None = None,
    ) -> None:
        self.default = default
        self.types = types
        self.extra_check = extra_check
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, standin: Any, owner: type | None = None) -> Any:
        if standin is None:
            return self
        return standin._knobs[self.name]

    def __set__(self, standin: Any, value: Any) -> None:
        self.check(value)
        with standin._lock:
            standin._knobs[self.name] = value

    def check(self, value: Any) -> None:
        """Raise ValueError unless `value` is one of the knob's types (a bool is not a number)."""
        wrong_bool = isinstance(value, bool) and bool not in self.types
        if wrong_bool or not isinstance(value, self.types):
            raise ValueError(f"knob {self.name!r} cannot be {value!r}")
        if self.extra_check is not None:
            self.extra_check(value)


def check_tool_calls(calls: list[Any] | None) -> None:
    """The `tool_calls` knob: each call needs at least a name."""
    for call in calls or []:
        if not (isinstance(call, dict) and isinstance(call.get("name"), str)):
            raise ValueError(f"tool call {call!r} needs a name")
