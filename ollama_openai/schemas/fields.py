"""Field tables: for every field a client may send to an endpoint, what the gateway does with it.

Each endpoint has one ``FieldTable``; validation reads it (a field without a row is refused, a
refused field passes only at a value that asks for nothing) and the README's field tables are
made from it (``python -m ollama_openai.schemas``), so the code, the docs and the tests
that walk the OpenAI SDK's own request types all read the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..errors import ApiError


class Treatment(StrEnum):
    """What becomes of a field."""

    HONOURED = "honoured"  # it means what it means at OpenAI, here too
    MAPPED = "mapped"  # translated into its Ollama equivalent
    IGNORED = "ignored"  # accepted; it cannot change what the model generates
    REFUSED = "refused"  # a 400 naming it, unless at a value that asks for nothing


# eq=False: rows are told apart by identity, so fields sharing one Field share a README row.
@dataclass(frozen=True, eq=False)
class Field:
    """One row: the treatment, what happens (or, when refused, why), and for a refused field
    the values that ask for nothing and so pass."""

    treatment: Treatment
    what: str
    harmless: tuple[Any, ...] = ()


def honoured(what: str) -> Field:
    return Field(Treatment.HONOURED, what)


def mapped(what: str) -> Field:
    return Field(Treatment.MAPPED, what)


def ignored(what: str) -> Field:
    return Field(Treatment.IGNORED, what)


def refused(why: str, *harmless: Any) -> Field:
    return Field(Treatment.REFUSED, why, harmless)


@dataclass(frozen=True)
class FieldTable:
    """One endpoint's rows: request fields (nested ones dotted, ``stream_options.include_usage``)
    and, for chat, the fields each message role may carry (a role without rows is refused)."""

    endpoint: str
    fields: Mapping[str, Field]
    message_fields: Mapping[str, Mapping[str, Field]] = field(default_factory=dict)
    # How the README names a message field: ``messages[].name``, ``input[].call_id``.
    item_label: str = "messages[]"

    def check(self, body: dict[str, Any], path: str = "") -> None:
        """Every non-null key of ``body`` (the request, or its object at ``path``) has a row
        that lets it through."""
        for name, value in body.items():
            if value is None:
                continue
            param = f"{path}.{name}" if path else name
            row = self.fields.get(param)
            if row is None:
                if path:
                    raise ApiError(
                        400,
                        f"{param} is not supported.",
                        param=param,
                        code="unsupported_parameter",
                    )
                raise ApiError(
                    400,
                    f"Unrecognized request argument supplied: {name}",
                    param=param,
                    code="unknown_parameter",
                )
            _refuse_unless_harmless(row, param, value)

    def check_message(self, message: dict[str, Any], role: str, where: str) -> None:
        """Every non-null field of one message (``where``: ``messages.[2]``) has a row."""
        rows = self.message_fields[role]
        for name, value in message.items():
            if value is None:
                continue
            param = f"{where}.{name}"
            row = rows.get(name)
            if row is None:
                noun = "message" if self.item_label == "messages[]" else "item"
                raise ApiError(
                    400,
                    f"{param} is not supported in a {role} {noun}.",
                    param=param,
                    code="unsupported_parameter",
                )
            _refuse_unless_harmless(row, param, value)

    def markdown(self) -> str:
        """The README's table for this endpoint: fields that share a row are listed together."""
        groups: dict[Field, list[str]] = {}
        for name, row in self.fields.items():
            groups.setdefault(row, []).append(f"`{name}`")
        for role, rows in self.message_fields.items():
            for name, row in rows.items():
                groups.setdefault(row, []).append(f"`{self.item_label}.{name}` ({role})")
        lines = ["| field | treatment | what happens |", "|---|---|---|"]
        for row, names in groups.items():
            what = row.what
            if row.harmless:
                values = ", ".join(f"`{json.dumps(value)}`" for value in row.harmless)
                what += f" Accepted when it asks for nothing: {values}."
            lines.append(f"| {', '.join(names)} | {row.treatment} | {what} |")
        lines.append(
            "| anything else | refused | 400 `unknown_parameter` (`unsupported_parameter` "
            "inside an object or a message), as OpenAI does |"
        )
        return "\n".join(lines)


def _refuse_unless_harmless(row: Field, param: str, value: Any) -> None:
    if row.treatment is not Treatment.REFUSED or value in row.harmless:
        return
    raise ApiError(
        400,
        f"{param} is not supported by this gateway: {row.what}",
        param=param,
        code="unsupported_parameter",
    )
