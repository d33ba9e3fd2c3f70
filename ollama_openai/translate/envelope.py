"""An answer's identity and the envelope every OpenAI answer and chunk wraps its choices in."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

SYSTEM_FINGERPRINT = "fp_ollama"


def new_id(prefix: str, separator: str = "-") -> str:
    """A unique id in OpenAI's style: the prefix, then 32 hex digits (``chatcmpl-...`` and
    ``cmpl-...`` for answers, ``resp_...`` with ``separator="_"`` for responses)."""
    return f"{prefix}{separator}{secrets.token_hex(16)}"


@dataclass(frozen=True)
class AnswerIdentity:
    """What a whole answer and every chunk of its stream repeat: one id, one created time, and
    the model the client asked for (an alias stays the alias)."""

    answer_id: str
    created: int
    model: str

    @classmethod
    def new(cls, prefix: str, model: str) -> AnswerIdentity:
        """A fresh identity for an answer being made now."""
        return cls(new_id(prefix), int(time.time()), model)

    def envelope(self, obj: str, choices: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
        """``{"id", "object", "created", "model", "system_fingerprint", "choices", ...}``;
        ``fields`` (such as ``usage``) come last."""
        return {
            "id": self.answer_id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
            **fields,
        }
