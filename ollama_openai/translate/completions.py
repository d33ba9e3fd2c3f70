"""Legacy text completions: an OpenAI completion request -> /api/generate payloads (one per
prompt and choice), and /api/generate lines -> ``text_completion`` answers and streams."""

from __future__ import annotations

from typing import Any

from .answers import GenerationPlan, completion_logprobs, finish_reason, include_usage
from .envelope import AnswerIdentity
from .options import SamplingDefaults, choice_count, ollama_extras, ollama_options, per_choice

OBJECT = "text_completion"


def plan(body: dict[str, Any], defaults: SamplingDefaults, model: str) -> GenerationPlan:
    """The plan for a validated completion request; ``model`` is the Ollama model."""
    echoes = completion_echoes(body)
    return GenerationPlan(
        path="/api/generate",
        payloads=completion_requests_to_ollama(body, defaults, model),
        identity=AnswerIdentity.new("cmpl", body["model"]),
        answer_object=OBJECT,
        chunk_object=OBJECT,
        new_choice=lambda index: TextChoice(index, echoes[index]),
        include_usage=include_usage(body),
    )


def completion_requests_to_ollama(
    body: dict[str, Any], defaults: SamplingDefaults, model: str | None = None
) -> list[dict[str, Any]]:
    """The /api/generate payloads for a validated OpenAI (legacy) completion request.

    One per choice, in choice-index order: each prompt of the list ``n`` times, as OpenAI
    numbers them (prompt ``i``'s answers are choices ``i*n`` to ``i*n + n - 1``).
    """
    payloads = []
    for prompt in completion_prompts(body):
        payload: dict[str, Any] = {
            "model": model or body["model"],
            "prompt": prompt,
            "stream": bool(body.get("stream")),
            "options": ollama_options(body, defaults),
        }
        if body.get("suffix") is not None:
            payload["suffix"] = body["suffix"]
        payload.update(ollama_extras(body, defaults))
        if body.get("logprobs") is not None:
            # The legacy API's logprobs is the number of alternatives per token.
            payload["logprobs"] = True
            payload["top_logprobs"] = body["logprobs"]
        payloads += per_choice(payload, choice_count(body))
    return payloads


def completion_prompts(body: dict[str, Any]) -> list[str]:
    """The prompt texts; schemas allows a string or a list of strings."""
    prompt = body["prompt"]
    return list(prompt) if isinstance(prompt, list) else [prompt]


def completion_echoes(body: dict[str, Any]) -> list[str]:
    """What ``echo`` puts before each choice's text: its prompt, or nothing."""
    if not body.get("echo"):
        return [""] * (len(completion_prompts(body)) * choice_count(body))
    return [prompt for prompt in completion_prompts(body) for _ in range(choice_count(body))]


class TextChoice:
    """One completion choice: ``echo`` (its prompt) first, then the generated text, with each
    token's ``text_offset`` counted from the start of the choice's text."""

    def __init__(self, index: int, echo: str = "") -> None:
        self.index = index
        self.echo = echo
        # Length of the choice's text so far: where the next token's text_offset starts.
        self._offset = len(echo)

    def advance(self, line: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """One line's text and its legacy logprobs, placed after the text so far."""
        text = line.get("response") or ""
        logprobs = completion_logprobs(line.get("logprobs"), self._offset)
        self._offset += len(text)
        return text, logprobs

    # The Choice protocol (answers.Choice).

    def opening(self) -> dict[str, Any] | None:
        return self._part(self.echo) if self.echo else None

    def step(self, line: dict[str, Any]) -> dict[str, Any] | None:
        if not line.get("response"):
            return None
        text, logprobs = self.advance(line)
        return self._part(text, logprobs=logprobs)

    def closing(self, done_line: dict[str, Any]) -> dict[str, Any]:
        return self._part("", finish_reason(done_line.get("done_reason")))

    def whole(self, answer: dict[str, Any]) -> dict[str, Any]:
        text, logprobs = self.advance(answer)
        return self._part(self.echo + text, finish_reason(answer.get("done_reason")), logprobs)

    def _part(
        self, text: str, finish: str | None = None, logprobs: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {"index": self.index, "text": text, "logprobs": logprobs, "finish_reason": finish}
