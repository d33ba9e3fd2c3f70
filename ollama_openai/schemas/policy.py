"""The operator's policy (the models file's ``[policy]``, per model and per alias): which Ollama
``options`` a client may set, and caps on the context window (``num_ctx``), the token limit
(``num_predict``, from ``max_tokens`` and its kin) and ``keep_alive``.

Over a cap a request is refused with a 400 naming the field, or, with ``over_limit = "clamp"``,
brought to the cap. Nothing changes in silence: ``apply_policy`` returns what it changed, which
the view logs and sends back in the ``x-ollama-openai-clamped`` header.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ApiError, bad_request
from ..models_file import Policy, keep_alive_seconds
from .checks import wrong_type

# The OpenAI fields a token limit travels in (chat, completions, responses).
TOKEN_LIMIT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def apply_policy(body: dict[str, Any], policy: Policy) -> tuple[dict[str, Any], list[str]]:
    """The body as ``policy`` lets it through, and what clamping changed (``param=value``)."""
    if policy == Policy():
        return body, []
    changes: list[str] = []
    body = dict(body)
    model = body["model"]
    options = dict(body.get("options") or {})
    allowed = policy.client_options
    for name in options:
        if allowed is not None and name not in allowed:
            listed = ", ".join(sorted(allowed)) or "none"
            raise ApiError(
                400,
                f"options.{name} may not be set by clients of this gateway for the model "
                f"'{model}' (the options they may set: {listed}).",
                param=f"options.{name}",
                code="unsupported_parameter",
            )
    limits = [(options, "num_ctx", "options.num_ctx", policy.max_num_ctx)]
    limits += [(options, "num_predict", "options.num_predict", policy.max_num_predict)]
    limits += [(body, name, name, policy.max_num_predict) for name in TOKEN_LIMIT_FIELDS]
    for holder, name, param, cap in limits:
        if cap is not None and holder.get(name) is not None:
            _cap(holder, name, param, cap, policy, model, changes)
    if body.get("options") is not None:
        body["options"] = options
    if body.get("keep_alive") is not None:
        _keep_alive(body, policy, model, changes)
    return body, changes


def _cap(
    holder: dict[str, Any],
    name: str,
    param: str,
    cap: int,
    policy: Policy,
    model: str,
    changes: list[str],
) -> None:
    value = holder[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise wrong_type(param, "a whole number", value)
    # A negative num_predict is unbounded (-1) or fills the context (-2): above any cap.
    if 0 <= value <= cap:
        return
    if policy.over_limit == "clamp":
        holder[name] = cap
        changes.append(f"{param}={cap}")
        return
    raise bad_request(
        f"{param} is {value}, above the most this gateway allows for the model '{model}': {cap}.",
        param,
    )


def _keep_alive(body: dict[str, Any], policy: Policy, model: str, changes: list[str]) -> None:
    low, high = policy.min_keep_alive, policy.max_keep_alive
    if low is None and high is None:
        return
    seconds = keep_alive_seconds(body["keep_alive"])
    if seconds is None:
        raise bad_request(
            "keep_alive must be a duration such as '5m' or a number of seconds.", "keep_alive"
        )
    bound = high if high is not None and seconds > high else None
    if low is not None and seconds < low:
        bound = low
    if bound is None:
        return
    if policy.over_limit == "clamp":
        body["keep_alive"] = int(bound) if bound == int(bound) else bound
        changes.append(f"keep_alive={body['keep_alive']}")
        return
    allowed = f"from {_seconds(low or 0)} to {_seconds(high) if high is not None else 'forever'}"
    raise bad_request(
        f"keep_alive {body['keep_alive']!r} is outside what this gateway allows for the model "
        f"'{model}': {allowed}.",
        "keep_alive",
    )


def _seconds(value: float) -> str:
    return "forever" if value == math.inf else f"{value:g} s"
