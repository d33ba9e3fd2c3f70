"""Chat completions: an OpenAI chat request -> /api/chat payloads, and /api/chat lines ->
``chat.completion`` answers and ``chat.completion.chunk`` streams."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .answers import GenerationPlan, chat_logprobs, finish_reason, include_usage
from .envelope import AnswerIdentity
from .options import SamplingDefaults, choice_count, ollama_extras, ollama_options, per_choice
from .tools import ToolCallCounter, tool_call_to_ollama, tools_to_ollama

ANSWER_OBJECT = "chat.completion"
CHUNK_OBJECT = "chat.completion.chunk"


def plan(body: dict[str, Any], defaults: SamplingDefaults, model: str) -> GenerationPlan:
    """The plan for a validated chat request; ``model`` is the Ollama model it runs on."""
    payload = chat_request_to_ollama(body, defaults, model)
    return GenerationPlan(
        path="/api/chat",
        payloads=per_choice(payload, choice_count(body)),
        identity=AnswerIdentity.new("chatcmpl", body["model"]),
        answer_object=ANSWER_OBJECT,
        chunk_object=CHUNK_OBJECT,
        new_choice=partial(
            ChatChoice, parallel_tool_calls=body.get("parallel_tool_calls") is not False
        ),
        include_usage=include_usage(body),
    )


def chat_request_to_ollama(
    body: dict[str, Any], defaults: SamplingDefaults, model: str | None = None
) -> dict[str, Any]:
    """The /api/chat payload for a validated OpenAI chat completion request.

    ``model`` is the Ollama model when the client named an alias; it defaults to the body's.
    """
    payload: dict[str, Any] = {
        "model": model or body["model"],
        "messages": messages_to_ollama(body["messages"]),
        "stream": bool(body.get("stream")),
        "options": ollama_options(body, defaults),
    }
    tools = tools_to_ollama(body.get("tools"), body.get("tool_choice"))
    if tools:
        payload["tools"] = tools
    if body.get("logprobs"):
        payload["logprobs"] = True
        payload["top_logprobs"] = body.get("top_logprobs") or 0
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_object":
        payload["format"] = "json"
    elif response_format.get("type") == "json_schema":
        payload["format"] = response_format["json_schema"].get("schema", {})
    payload.update(ollama_extras(body, defaults))
    return payload


def messages_to_ollama(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ollama's messages for OpenAI's; a tool result is named by its tool, not its call id."""
    tool_names: dict[str, str] = {}
    translated = []
    for message in messages:
        for call in message.get("tool_calls") or []:
            tool_names[call["id"]] = call["function"]["name"]
        translated.append(_message_to_ollama(message, tool_names))
    return translated


def _message_to_ollama(message: dict[str, Any], tool_names: dict[str, str]) -> dict[str, Any]:
    # "developer" is OpenAI's newer name for "system"; Ollama only knows the latter.
    role = "system" if message["role"] == "developer" else message["role"]
    content = message.get("content")
    texts, images = [], []
    if content is None or isinstance(content, str):
        texts.append(content or "")
    else:
        for part in content:
            if part["type"] == "text":
                texts.append(part["text"])
            elif part["type"] == "refusal":
                texts.append(part["refusal"])
            else:
                # Ollama wants the bare base64 data, without the "data:image/png;base64," header.
                images.append(part["image_url"]["url"].partition(",")[2])
    result: dict[str, Any] = {"role": role, "content": "\n".join(texts)}
    if images:
        result["images"] = images
    if message.get("reasoning_content"):
        result["thinking"] = message["reasoning_content"]
    if message.get("tool_calls"):
        result["tool_calls"] = [tool_call_to_ollama(call) for call in message["tool_calls"]]
    if role == "tool":
        result["tool_name"] = tool_names[message["tool_call_id"]]
    return result


@dataclass
class ChatChoice:
    """One chat choice: the rules that turn /api/chat lines into a delta or a message.

    With ``parallel_tool_calls`` false only the answer's first tool call is kept: Ollama
    cannot be told to make one call at most.
    """

    index: int
    parallel_tool_calls: bool = True
    _tool_calls: ToolCallCounter = field(init=False)

    def __post_init__(self) -> None:
        self._tool_calls = ToolCallCounter(self.parallel_tool_calls)

    def delta(self, line: dict[str, Any]) -> dict[str, Any]:
        """What one line adds, in OpenAI's delta shape: ``reasoning_content`` (Ollama's
        thinking), ``content``, ``tool_calls`` (each whole, with its id and counting index)."""
        message = line.get("message") or {}
        delta: dict[str, Any] = {}
        if message.get("thinking"):
            delta["reasoning_content"] = message["thinking"]
        if message.get("content"):
            delta["content"] = message["content"]
        if message.get("tool_calls"):
            calls = self._tool_calls.take(message["tool_calls"])
            if calls:
                delta["tool_calls"] = calls
        return delta

    def finish_reason(self, done_line: dict[str, Any]) -> str:
        """``tool_calls`` once a call was made, else Ollama's done_reason mapped."""
        if self._tool_calls.made:
            return "tool_calls"
        return finish_reason(done_line.get("done_reason"))

    # The Choice protocol (answers.Choice).

    def opening(self) -> dict[str, Any]:
        # OpenAI streams announce the role before any content.
        return self._part({"role": "assistant", "content": ""})

    def step(self, line: dict[str, Any]) -> dict[str, Any] | None:
        delta = self.delta(line)
        if not delta:
            return None
        return self._part(delta, logprobs=chat_logprobs(line.get("logprobs")))

    def closing(self, done_line: dict[str, Any]) -> dict[str, Any]:
        return self._part({}, finish=self.finish_reason(done_line))

    def whole(self, answer: dict[str, Any]) -> dict[str, Any]:
        delta = self.delta(answer)
        calls = delta.get("tool_calls") or []
        message: dict[str, Any] = {
            "role": "assistant",
            # OpenAI sends null content, not "", when the answer is only tool calls.
            "content": delta.get("content") or (None if calls else ""),
            "refusal": None,
        }
        if "reasoning_content" in delta:
            message["reasoning_content"] = delta["reasoning_content"]
        if calls:
            message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
        return {
            "index": self.index,
            "message": message,
            "logprobs": chat_logprobs(answer.get("logprobs")),
            "finish_reason": self.finish_reason(answer),
        }

    def _part(
        self,
        delta: dict[str, Any],
        finish: str | None = None,
        logprobs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {"index": self.index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
