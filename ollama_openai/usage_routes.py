"""``GET /v1/usage``: the usage ledger as a key may see it (its own rows; an admin key's, every
key's), with the budgets of the keys shown. OpenAI's own usage API is not public; the shape is
the gateway's, documented in the README."""

from __future__ import annotations

import re
import time
from datetime import date
from typing import Any

from flask import Blueprint, Response, request

from .auth import current_key, keys_in_force
from .errors import bad_request, permission_denied, store_unavailable
from .exchange import start_exchange
from .keyring import ApiKey
from .quotas import budgets, utc_date
from .routes import gateway, json_response
from .usage import MAX_DAYS, StoreUnavailable, Usage

bp = Blueprint("usage", __name__)

QUERY = ("start", "end", "key", "model")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@bp.get("/v1/usage")
def read_usage() -> Response:
    """Requests and tokens per day, key and model, from ``start`` to ``end`` (UTC dates)."""
    start_exchange("usage")
    unknown = sorted(set(request.args) - set(QUERY))
    if unknown:
        raise bad_request(
            f"Unknown parameter: '{unknown[0]}'. Use {', '.join(QUERY)}.",
            unknown[0],
            "unknown_parameter",
        )
    now = time.time()
    first, last = _date_range(utc_date(now))
    caller = current_key()
    wanted = request.args.get("key")
    if caller is not None and not caller.admin:
        if wanted not in (None, caller.name):
            raise permission_denied(
                f"The key '{caller.name}' may read its own usage only: it needs an admin key."
            )
        wanted = caller.name
    store = gateway().usage
    try:
        rows = store.rows(first, last, wanted, request.args.get("model"))
        shown = [
            budget.to_dict(key.name)
            for key in _keys_shown(wanted)
            for budget in budgets(store, key, now)
        ]
    except StoreUnavailable as error:
        raise store_unavailable(error) from None
    return json_response(
        {
            "object": "usage",
            "start": first,
            "end": last,
            "data": [_row(row) for row in rows],
            "total": _totals(rows),
            "budgets": shown,
        }
    )


def _date_range(today: date) -> tuple[str, str]:
    """``start`` (default: the first day of ``end``'s month) and ``end`` (default: today)."""
    last = _date("end", today)
    first = _date("start", last.replace(day=1))
    if first > last:
        raise bad_request(f"start ({first}) is after end ({last}).", "start")
    asked = (last - first).days + 1
    if asked > MAX_DAYS:
        raise bad_request(f"At most {MAX_DAYS} days at once; asked for {asked}.", "start")
    return first.isoformat(), last.isoformat()


def _date(name: str, default: date) -> date:
    value = request.args.get(name)
    if value is None:
        return default
    try:
        if _DATE.fullmatch(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise bad_request(f"{name} must be a date as YYYY-MM-DD (UTC), got {value!r}.", name)


def _keys_shown(wanted: str | None) -> list[ApiKey]:
    """Whose budgets the answer carries: the key asked about (a key that is not an admin asks
    about itself), else every key with a budget."""
    ring = keys_in_force()
    if wanted is not None:
        key = ring.named(wanted)
        return [] if key is None else [key]
    return [key for key in ring.keys if key.has_budget]


def _row(row: Usage) -> dict[str, Any]:
    return {
        "date": row.day,
        "key": row.key or None,
        "model": row.model,
        **_counts(row.requests, row.prompt_tokens, row.completion_tokens),
    }


def _totals(rows: list[Usage]) -> dict[str, int]:
    return _counts(
        sum(row.requests for row in rows),
        sum(row.prompt_tokens for row in rows),
        sum(row.completion_tokens for row in rows),
    )


def _counts(requests: int, prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "requests": requests,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
