"""The Responses API's output: the items (reasoning, message, function_call) Ollama's lines
make, with the stream events that tell each step, and the usage of a response.

What one line adds is chat's own rule (``ChatChoice.delta``), so chat and Responses cannot
drift.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import chat
from .answers import cached_tokens, chat_logprobs, usage
from .responses_input import encrypt_reasoning
from .stored_items import item_id

if TYPE_CHECKING:
    from .responses import ResponsesPlan

# A step's stream events before numbering: their type and their fields.
Step = tuple[str, dict[str, Any]]


def response_usage(done_line: dict[str, Any]) -> dict[str, Any]:
    """The Responses API's usage from Ollama's counters; Ollama does not count reasoning
    tokens apart, and reports cached prompt tokens only on newer servers."""
    counts = usage(done_line)
    return {
        "input_tokens": counts["prompt_tokens"],
        "input_tokens_details": {"cached_tokens": cached_tokens(done_line) or 0},
        "output_tokens": counts["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": counts["total_tokens"],
    }


class OutputBuilder:
    """The output items of one response as Ollama's lines come: consecutive thinking makes one
    reasoning item, consecutive text one message, each tool call one function_call item. Each
    step also returns the stream events that tell it; a non-streamed answer ignores them."""

    def __init__(self, plan: ResponsesPlan) -> None:
        self._plan = plan
        self._choice = chat.ChatChoice(0, plan.parallel_tool_calls)
        self.output: list[dict[str, Any]] = []
        # The reasoning or message item being written, its text pieces and logprobs.
        self._open: dict[str, Any] | None = None
        self._pieces: list[str] = []
        self._logprobs: list[dict[str, Any]] = []
        self._done_line: dict[str, Any] | None = None

    def step(self, line: dict[str, Any]) -> list[Step]:
        """The events for one line."""
        delta = self._choice.delta(line)
        steps: list[Step] = []
        if "reasoning_content" in delta:
            steps += self._write("reasoning", delta["reasoning_content"], [])
        if "content" in delta:
            logprobs = (chat_logprobs(line.get("logprobs")) or {}).get("content") or []
            steps += self._write("message", delta["content"], logprobs)
        for call in delta.get("tool_calls") or []:
            steps += self._close("completed") + self._call(call)
        return steps

    def finish(self, done_line: dict[str, Any]) -> list[Step]:
        """Close the open item: incomplete when Ollama stopped on the token limit."""
        self._done_line = done_line
        return self._close("incomplete" if self._cut() else "completed")

    def result(self) -> dict[str, Any]:
        """The finished response: completed, or incomplete at the token limit."""
        done_line = self._done_line or {}
        if self._cut():
            return self._plan.response(
                "incomplete",
                self.output,
                incomplete_details={"reason": "max_output_tokens"},
                usage=response_usage(done_line),
            )
        return self._plan.response(
            "completed",
            self.output,
            usage=response_usage(done_line),
            completed_at=int(time.time()),
        )

    def failed(self, error: dict[str, Any]) -> dict[str, Any]:
        """The response of a stream Ollama failed: its finished items, and the error."""
        code = error.get("code") or "server_error"
        return self._plan.response(
            "failed", self.output, error={"code": code, "message": error.get("message", "")}
        )

    def _cut(self) -> bool:
        return self._done_line is not None and (
            self._choice.finish_reason(self._done_line) == "length"
        )

    def _write(self, kind: str, text: str, logprobs: list[dict[str, Any]]) -> list[Step]:
        steps: list[Step] = []
        if self._open is None or self._open["type"] != kind:
            steps += self._close("completed") + self._start(kind)
        self._pieces.append(text)
        self._logprobs += logprobs
        where = self._where()
        if kind == "message":
            steps.append(
                ("response.output_text.delta", {**where, "delta": text, "logprobs": logprobs})
            )
            return steps
        steps.append(("response.reasoning_text.delta", {**where, "delta": text}))
        if self._plan.summary:
            summary_where = {**where, "summary_index": 0}
            del summary_where["content_index"]
            steps.append(
                ("response.reasoning_summary_text.delta", {**summary_where, "delta": text})
            )
        return steps

    def _start(self, kind: str) -> list[Step]:
        if kind == "message":
            item = {
                "id": self._item_id(kind),
                "type": "message",
                "role": "assistant",
                "content": [],
            }
            item["status"] = "in_progress"
            part: dict[str, Any] = {"type": "output_text", "text": "", "annotations": []}
            part["logprobs"] = []
        else:
            item = {"id": self._item_id(kind), "type": "reasoning", "summary": [], "content": []}
            part = {"type": "reasoning_text", "text": ""}
        self._open, self._pieces, self._logprobs = item, [], []
        index = len(self.output)
        steps: list[Step] = [
            ("response.output_item.added", {"output_index": index, "item": dict(item)}),
            ("response.content_part.added", {**self._where(), "part": part}),
        ]
        if kind == "reasoning" and self._plan.summary:
            steps.append(
                (
                    "response.reasoning_summary_part.added",
                    {
                        "item_id": item["id"],
                        "output_index": index,
                        "summary_index": 0,
                        "part": {"type": "summary_text", "text": ""},
                    },
                )
            )
        return steps

    def _close(self, status: str) -> list[Step]:
        item, self._open = self._open, None
        if item is None:
            return []
        text = "".join(self._pieces)
        where = {"item_id": item["id"], "output_index": len(self.output), "content_index": 0}
        steps: list[Step] = []
        part: dict[str, Any]
        if item["type"] == "message":
            part = {"type": "output_text", "text": text, "annotations": []}
            part["logprobs"] = self._logprobs
            item.update(content=[part], status=status)
            steps.append(
                ("response.output_text.done", {**where, "text": text, "logprobs": self._logprobs})
            )
        else:
            part = {"type": "reasoning_text", "text": text}
            item.update(content=[part], status=status)
            steps.append(("response.reasoning_text.done", {**where, "text": text}))
        steps.append(("response.content_part.done", {**where, "part": part}))
        if item["type"] == "reasoning":
            steps += self._close_reasoning(item, text)
        self.output.append(item)
        steps.append(
            ("response.output_item.done", {"output_index": where["output_index"], "item": item})
        )
        return steps

    def _close_reasoning(self, item: dict[str, Any], text: str) -> list[Step]:
        if self._plan.encrypted_reasoning:
            item["encrypted_content"] = encrypt_reasoning(text)
        if not self._plan.summary:
            return []
        summary = {"type": "summary_text", "text": text}
        item["summary"] = [summary]
        where = {"item_id": item["id"], "output_index": len(self.output), "summary_index": 0}
        return [
            ("response.reasoning_summary_text.done", {**where, "text": text}),
            ("response.reasoning_summary_part.done", {**where, "part": summary}),
        ]

    def _call(self, call: dict[str, Any]) -> list[Step]:
        arguments = call["function"]["arguments"]
        item = {
            "id": self._item_id("function_call"),
            "type": "function_call",
            "status": "in_progress",
            "arguments": "",
            "call_id": call["id"],
            **self._plan.names.call_fields(call["function"]["name"]),
        }
        index = len(self.output)
        where = {"item_id": item["id"], "output_index": index}
        added = ("response.output_item.added", {"output_index": index, "item": dict(item)})
        item.update(arguments=arguments, status="completed")
        self.output.append(item)
        return [
            added,
            ("response.function_call_arguments.delta", {**where, "delta": arguments}),
            ("response.function_call_arguments.done", {**where, "arguments": arguments}),
            ("response.output_item.done", {"output_index": index, "item": item}),
        ]

    def _item_id(self, kind: str) -> str:
        # The item about to be the next of the output; the response's input items come first.
        index = len(self._plan.input_items) + len(self.output)
        return item_id(self._plan.response_id, kind, index)

    def _where(self) -> dict[str, Any]:
        assert self._open is not None
        return {"item_id": self._open["id"], "output_index": len(self.output), "content_index": 0}
