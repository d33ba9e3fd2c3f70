"""Streamed chat and completions: SSE framing, relaying as produced, failures mid-stream."""

import json
import time

import openai
import pytest
import requests

HELLO = [{"role": "user", "content": "Tell me a story about a brave little toaster"}]


def raw_stream(server, path, body):
    """The raw SSE events of a streamed answer, for what the SDK hides ([DONE], headers)."""
    response = requests.post(f"{server.url}{path}", json=body, stream=True, timeout=30)
    events = [line for line in response.iter_lines() if line]
    return response, events


def test_streamed_text_reassembles_to_what_ollama_produced(openai_client, ollama):
    stream = openai_client.chat.completions.create(model="llama3.2", messages=HELLO, stream=True)
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == ollama.replies[-1]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({chunk.id for chunk in chunks}) == 1
    assert len({chunk.created for chunk in chunks}) == 1
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].choices[0].delta.content is None
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)


def test_sse_framing_headers_and_done(server, ollama):
    body = {"model": "llama3.2", "messages": HELLO, "stream": True}
    response, events = raw_stream(server, "/v1/chat/completions", body)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert all(event.startswith(b"data: ") for event in events)
    assert events[-1] == b"data: [DONE]"
    payloads = [json.loads(event[6:]) for event in events[:-1]]
    assert payloads[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert payloads[-1]["choices"][0]["delta"] == {}


def test_include_usage_adds_a_usage_chunk(openai_client, ollama):
    stream = openai_client.chat.completions.create(
        model="llama3.2", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert all(chunk.usage is None for chunk in chunks[:-1])
    usage = chunks[-1].usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens > 0
    # One chunk per token Ollama produced: relayed one by one, never merged or dropped.
    content_chunks = [c for c in chunks[:-1] if c.choices[0].delta.content]
    assert len(content_chunks) == usage.completion_tokens > 1


def test_chunks_are_relayed_as_they_are_produced(openai_client, ollama):
    ollama.token_interval = 0.15
    ollama.reply = "one two three four five six"
    arrivals = []
    started = time.monotonic()
    stream = openai_client.chat.completions.create(model="llama3.2", messages=HELLO, stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 6
    # The first token arrives long before the last one is produced (no buffering to the end).
    assert arrivals[-1] - arrivals[0] >= 0.5


def test_streamed_completion(openai_client, ollama):
    stream = openai_client.completions.create(
        model="llama3.2", prompt="Once upon a time", stream=True
    )
    chunks = list(stream)
    assert "".join(chunk.choices[0].text for chunk in chunks) == ollama.replies[-1]
    assert all(chunk.object == "text_completion" for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    "fault", ["error_after_tokens", "drop_after_tokens", "garbage_after_tokens"]
)
def test_failure_mid_stream_reaches_the_sdk_as_api_error(openai_client, ollama, fault):
    setattr(ollama, fault, 2)
    ollama.fail_error = "llama runner process has terminated: signal: killed"
    stream = openai_client.chat.completions.create(model="llama3.2", messages=HELLO, stream=True)
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) != ""
    assert caught.value.body["type"] == "server_error"
    assert caught.value.body["code"] == "upstream_error"
    if fault == "error_after_tokens":
        assert "llama runner process has terminated" in caught.value.message


def test_failure_mid_stream_ends_without_done(server, ollama):
    ollama.error_after_tokens = 1
    body = {"model": "llama3.2", "messages": HELLO, "stream": True}
    _, events = raw_stream(server, "/v1/chat/completions", body)
    assert b"data: [DONE]" not in events
    last = json.loads(events[-1][6:])
    assert set(last["error"]) == {"message", "type", "param", "code"}


def test_unknown_model_in_a_stream_is_a_404_before_any_event(openai_client):
    with pytest.raises(openai.NotFoundError):
        openai_client.chat.completions.create(model="ghost", messages=HELLO, stream=True)
