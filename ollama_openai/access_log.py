"""The access log: one line per request, written when its answer is closed (streams included).

Each line holds time, request id, client, key name, method, path, status, duration, model, stream,
prompt/completion tokens, time to first token, the upstream error and the Ollama server; never
a key, a header or a message. The request id is the client's ``X-Request-ID`` when it is a
plain token, else a new one, and is sent back in the answer. ``LOG_FORMAT=json`` makes every
log line, not only these, a JSON object.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, request

from .answered import Answered, when_answered
from .config import Settings
from .hooks import before_request

log = logging.getLogger(__name__)

# What a client may choose as its request id; anything else (newlines, huge values) could
# forge or flood log lines, so it is replaced.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Values written bare in text lines; others are JSON-quoted so one request stays one line.
_BARE = re.compile(r"[A-Za-z0-9._:/@+-]*")
_MAX_VALUE = 200


def init_app(app: Flask, settings: Settings) -> None:
    """Give every request an id and log it once its answer is closed."""

    @when_answered(app)
    def log_when_closed(answered: Answered, response: Response) -> Callable[[], None] | None:
        request_id = answered.request_id or new_request_id()
        response.headers.add("X-Request-ID", request_id)
        # LOG_LEVEL=WARNING turns the access log off: then the line is not even made.
        if not log.isEnabledFor(logging.INFO):
            return None
        return lambda: _write(request_id, answered)

    @before_request(app)
    def start_request() -> None:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID.fullmatch(given) else new_request_id()


def new_request_id() -> str:
    """``req_`` and 32 random hex digits. The random module is seeded again in each forked
    worker, so workers never share a sequence; a request id needs no secret (uuid4 reads the
    kernel's random source: six times the cost)."""
    return f"req_{random.getrandbits(128):032x}"


def access_fields(request_id: str, answered: Answered) -> dict[str, Any]:
    """The line's fields once the answer is complete: timings and what the model did."""
    exchange = answered.exchange
    ttft = exchange.time_to_first_token if exchange else None
    return {
        "request_id": request_id,
        "client": answered.client,
        "key": answered.key,
        "method": answered.method,
        "path": answered.path,
        "status": answered.status,
        "duration_ms": round((time.monotonic() - answered.started) * 1000, 1),
        "model": exchange.model if exchange else None,
        "stream": exchange.stream if exchange else None,
        "prompt_tokens": exchange.prompt_tokens if exchange else None,
        "completion_tokens": exchange.completion_tokens if exchange else None,
        "ttft_ms": None if ttft is None else round(ttft * 1000, 1),
        "upstream_error": exchange.upstream_error if exchange else None,
        "server": exchange.server if exchange else None,
    }


def _write(request_id: str, answered: Answered) -> None:
    line = access_fields(request_id, answered)
    log.info(_text(line), extra={"access": line})


def _text(line: dict[str, Any]) -> str:
    # One loop, no call per field: the line is written for every request.
    parts = []
    for name, value in line.items():
        kind = type(value)
        if value is None:
            text = "-"
        elif kind is int or kind is float:
            text = str(value)  # digits, a sign, a point: bare, no pattern to match
        elif kind is bool:
            text = "true" if value else "false"
        else:
            text = str(value)[:_MAX_VALUE]
            if not (text and _BARE.fullmatch(text)):
                text = json.dumps(text)
        parts.append(f"{name}={text}")
    return " ".join(parts)


class TextFormatter(logging.Formatter):
    """``time level logger: message``; the time's date and seconds are formatted once a second,
    not once a line (strftime was a tenth of an access line's cost)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._stamp = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = second
        return f"{self._stamp},{int(record.msecs):03d}"


class JsonFormatter(logging.Formatter):
    """One JSON object per log line; access lines carry their fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
        }
        access = getattr(record, "access", None)
        if access is not None:
            entry.update({name: _json_value(value) for name, value in access.items()})
        else:
            entry["message"] = record.getMessage()
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _json_value(value: Any) -> Any:
    return value[:_MAX_VALUE] if isinstance(value, str) else value


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for LOG_FORMAT (``text`` or ``json``)."""
    if log_format == "json":
        return JsonFormatter()
    return TextFormatter()
