"""The Responses API: a ``/v1/responses`` request -> /api/chat, and /api/chat lines -> output
items (reasoning, message, function_call), the response object and its named event stream.

What one line adds is chat's own rule (``ChatChoice.delta``: thinking, content, tool calls with
their ids and the parallel cap), so chat and Responses cannot drift; a non-streamed answer is
the same steps applied to Ollama's one whole answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from . import chat
from .answers import Event
from .options import SamplingDefaults
from .responses_input import ToolNames, chat_body, input_items
from .responses_output import OutputBuilder, Step
from .stored_items import new_response_id


@dataclass(frozen=True)
class ResponsesPlan:
    """One responses request: its /api/chat payload, the new input items (kept with the
    response), and how Ollama's answer becomes the response and its events."""

    payloads: list[dict[str, Any]]
    response_id: str
    created_at: int
    # The model the client asked for (an alias stays the alias).
    model: str
    input_items: list[dict[str, Any]]
    # The request's settings, echoed on the response object as OpenAI does.
    settings: dict[str, Any]
    names: ToolNames
    parallel_tool_calls: bool
    summary: bool
    encrypted_reasoning: bool
    path: str = "/api/chat"

    @property
    def stream(self) -> bool:
        return bool(self.payloads[0].get("stream"))

    def response(self, status: str, output: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
        """The response object in a given state."""
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": None,
            "incomplete_details": None,
            "model": self.model,
            "output": output,
            "usage": None,
            **self.settings,
            **fields,
        }

    def translator(self) -> ResponsesStream:
        """The stream translator for this response (see ``streaming.relay``)."""
        return ResponsesStream(self)

    def answer(self, answers: list[dict[str, Any]]) -> dict[str, Any]:
        """The response for Ollama's one non-streamed answer."""
        builder = OutputBuilder(self)
        [answer] = answers
        builder.step(answer)
        builder.finish(answer)
        return builder.result()


def plan(
    body: dict[str, Any],
    history: list[dict[str, Any]],
    defaults: SamplingDefaults,
    model: str,
) -> ResponsesPlan:
    """The plan for a validated responses request; ``history`` holds the items of the stored
    conversation it continues (inputs and outputs, oldest first), ``model`` the Ollama model."""
    response_id = new_response_id()
    items = input_items(body, response_id)
    request, names = chat_body(body, history + items)
    reasoning = body.get("reasoning") or {}
    include = body.get("include") or []
    payload = chat.chat_request_to_ollama(request, defaults, model)
    return ResponsesPlan(
        payloads=[payload],
        response_id=response_id,
        created_at=int(time.time()),
        model=body["model"],
        input_items=items,
        settings=_settings(body, truncation="auto" if payload.get("truncate") else "disabled"),
        names=names,
        parallel_tool_calls=body.get("parallel_tool_calls") is not False,
        summary=reasoning.get("summary") is not None,
        encrypted_reasoning="reasoning.encrypted_content" in include,
    )


def _settings(body: dict[str, Any], truncation: str) -> dict[str, Any]:
    """The request's settings as the response echoes them; ``truncation`` as applied (the
    model's or the gateway's setting when the request has none)."""
    reasoning = body.get("reasoning") or {}
    return {
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": body.get("store") is not False,
        "temperature": body.get("temperature"),
        "text": {"format": (body.get("text") or {}).get("format") or {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_logprobs": body.get("top_logprobs"),
        "top_p": body.get("top_p"),
        "truncation": truncation,
        "user": body.get("user"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "background": False,
    }


class ResponsesStream:
    """The named events of one response's stream, each with a rising ``sequence_number``;
    ``response`` holds the response once the stream has ended (completed, incomplete or
    failed), for the store. No ``[DONE]`` ends a Responses stream."""

    def __init__(self, plan: ResponsesPlan) -> None:
        self._plan = plan
        self._builder = OutputBuilder(plan)
        self._sequence = 0
        self.response: dict[str, Any] | None = None

    def start(self) -> list[Event]:
        opened = self._plan.response("in_progress", [])
        return self._events(
            [
                ("response.created", {"response": opened}),
                ("response.in_progress", {"response": opened}),
            ]
        )

    def piece(self, line: dict[str, Any], index: int = 0) -> list[Event]:
        return self._events(self._builder.step(line))

    def finish(self, done_line: dict[str, Any], index: int = 0) -> list[Event]:
        return self._events(self._builder.finish(done_line))

    def end(self, totals: dict[str, int]) -> list[Event]:
        self.response = self._builder.result()
        kind = (
            "response.completed"
            if self.response["status"] == "completed"
            else "response.incomplete"
        )
        return self._events([(kind, {"response": self.response})])

    def fail(self, error: dict[str, Any]) -> list[Event]:
        self.response = self._builder.failed(error)
        return self._events([("response.failed", {"response": self.response})])

    def _events(self, steps: list[Step]) -> list[Event]:
        events: list[Event] = []
        for kind, fields in steps:
            events.append((kind, {"type": kind, "sequence_number": self._sequence, **fields}))
            self._sequence += 1
        return events
