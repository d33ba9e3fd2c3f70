"""Field tables: for every field a client may send to an endpoint, what the gateway does with it.

Each endpoint has one ``FieldTable``; validation reads it (a field without a row is refused, a
refused field passes only at a value that asks for nothing, and so inside each kind of content
part) and the README's field tables are made from it (``python -m ollama_openai.schemas``), so
the code, the docs and the tests that walk the OpenAI SDK's own request types all read the same
rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..errors import ApiError, bad_request


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
    """One endpoint's rows: request fields (nested ones dotted, ``stream_options.include_usage``),
    the fields each message role may carry (a role without rows is refused), and the content
    parts: which kinds each holder (a role, or an item kind) takes, and each kind's fields."""

    endpoint: str
    fields: Mapping[str, Field]
    message_fields: Mapping[str, Mapping[str, Field]] = field(default_factory=dict)
    # How the README names a message field: ``messages[].name``, ``input[].call_id``.
    item_label: str = "messages[]"
    # The kinds of content part each holder's content may hold; a kind listed here whose
    # ``type`` row is refused is a 400 that says why, any other kind a 400 that lists these.
    part_kinds: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Each kind's fields, nested ones dotted (``image_url.detail``); ``type`` is the part itself.
    part_fields: Mapping[str, Mapping[str, Field]] = field(default_factory=dict)
    # How the README names a part's field: ``messages[].content[].text``.
    part_label: str = "messages[].content[]"

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

    def check_part(self, part: dict[str, Any], holder: str, where: str, noun: str) -> str:
        """One content part (``where``: ``messages.[0].content.[1]``) is of a kind ``holder``
        takes and each of its non-null fields, nested ones too, has a row; returns the kind.
        ``noun`` names the holder in an error: ``a user message``."""
        kind = part.get("type")
        kinds = self.part_kinds[holder]
        if not isinstance(kind, str) or kind not in kinds:
            usable = [
                k for k in kinds if self.part_fields[k]["type"].treatment is not Treatment.REFUSED
            ]
            raise bad_request(
                f"{where}.type {kind!r} is not supported in {noun}; use {', '.join(usable)}.",
                f"{where}.type",
            )
        rows = self.part_fields[kind]
        if rows["type"].treatment is Treatment.REFUSED:
            raise bad_request(
                f"{where}.type {kind!r} is not supported by this gateway: {rows['type'].what}",
                f"{where}.type",
            )
        _check_part_fields(part, rows, where, "")
        return kind

    def markdown(self) -> str:
        """The README's table for this endpoint: fields that share a row are listed together."""
        groups: dict[Field, list[str]] = {}
        for name, row in self.fields.items():
            groups.setdefault(row, []).append(f"`{name}`")
        for role, rows in self.message_fields.items():
            for name, row in rows.items():
                groups.setdefault(row, []).append(f"`{self.item_label}.{name}` ({role})")
        for name, row in self._part_rows():
            groups.setdefault(row, []).append(name)
        lines = ["| field | treatment | what happens |", "|---|---|---|"]
        for row, names in groups.items():
            what = row.what
            if row.harmless:
                values = ", ".join(f"`{json.dumps(value)}`" for value in row.harmless)
                what += f" Accepted when it asks for nothing: {values}."
            lines.append(f"| {', '.join(names)} | {row.treatment} | {what} |")
        inside = "inside an object or a message"
        if self.part_fields:
            inside += "; `unknown_parameter` with the field's whole path inside a content part"
        lines.append(
            f"| anything else | refused | 400 `unknown_parameter` (`unsupported_parameter` "
            f"{inside}), as OpenAI does |"
        )
        return "\n".join(lines)

    def _part_rows(self) -> list[tuple[str, Field]]:
        """README names for the part rows: a kind with its holders, a field with the kinds
        that carry it (one name for a field several kinds share a row for)."""
        holders: dict[str, list[str]] = {}
        for holder, kinds in self.part_kinds.items():
            for kind in kinds:
                holders.setdefault(kind, []).append(holder)
        names: dict[tuple[Field, str], list[str]] = {}
        for kind, rows in self.part_fields.items():
            for name, row in rows.items():
                if name == "type":
                    label = f"`{self.part_label}` of type `{kind}`"
                    names[(row, label)] = holders[kind]
                else:
                    label = f"`{self.part_label}.{name}`"
                    names.setdefault((row, label), []).append(f"`{kind}`")
        return [(f"{label} ({', '.join(which)})", row) for (row, label), which in names.items()]


def _refuse_unless_harmless(row: Field, param: str, value: Any) -> None:
    if row.treatment is not Treatment.REFUSED or value in row.harmless:
        return
    raise ApiError(
        400,
        f"{param} is not supported by this gateway: {row.what}",
        param=param,
        code="unsupported_parameter",
    )


def _check_part_fields(
    part: dict[str, Any], rows: Mapping[str, Field], where: str, path: str
) -> None:
    for name, value in part.items():
        if value is None:
            continue
        key = f"{path}{name}"
        param = f"{where}.{key}"
        row = rows.get(key)
        if row is None:
            raise ApiError(
                400, f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter"
            )
        _refuse_unless_harmless(row, param, value)
        if isinstance(value, dict) and any(other.startswith(f"{key}.") for other in rows):
            _check_part_fields(value, rows, where, f"{key}.")
