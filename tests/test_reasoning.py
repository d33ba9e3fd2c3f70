"""reasoning_effort -> Ollama ``think``; thinking surfaces as ``reasoning_content``."""

import pytest

THINKER = "qwen3:8b"  # the stand-in reports the "thinking" capability for qwen3
ASK = [{"role": "user", "content": "What is 2+2?"}]


@pytest.mark.parametrize(("effort", "think"), [("high", "high"), ("low", "low"), ("none", False)])
def test_reasoning_effort_becomes_think(openai_client, ollama, effort, think):
    answer = openai_client.chat.completions.create(
        model=THINKER, messages=ASK, reasoning_effort=effort
    )
    assert ollama.last_request("/api/chat").body["think"] == think
    reasoning = getattr(answer.choices[0].message, "reasoning_content", None)
    assert bool(reasoning) is (think is not False)


def test_streamed_thinking_comes_as_reasoning_content_deltas(openai_client, ollama):
    ollama.thinking = "Two and two make four."
    stream = openai_client.chat.completions.create(
        model=THINKER, messages=ASK, reasoning_effort="medium", stream=True
    )
    reasoning, content = "", ""
    for chunk in stream:
        delta = chunk.choices[0].delta
        reasoning += getattr(delta, "reasoning_content", None) or ""
        content += delta.content or ""
    assert reasoning == "Two and two make four."
    assert content == ollama.replies[-1]


def test_history_reasoning_goes_back_as_thinking(openai_client, ollama):
    history = [*ASK, {"role": "assistant", "content": "4", "reasoning_content": "2+2=4"}]
    openai_client.chat.completions.create(model=THINKER, messages=[*history, *ASK])
    assert ollama.last_request("/api/chat").body["messages"][1]["thinking"] == "2+2=4"
