"""Retry hints end to end: with the SDK's default retries, a failure that will recur reaches
Ollama once, and one that may heal is tried again (``x-should-retry``, see errors.py)."""

import openai
import pytest

HELLO = [{"role": "user", "content": "Tell me a story"}]
BUSY = "server busy, please try again.  maximum pending requests exceeded"
# The SDK's default: each request is tried at most three times.
ATTEMPTS_WHEN_RETRIED = 3


@pytest.fixture
def retrying_client(server, ollama):
    """The official SDK with its default retries, as applications run it."""
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="test-key") as client:
        assert client.max_retries == ATTEMPTS_WHEN_RETRIED - 1
        yield client


def chat_attempts(ollama):
    return sum(1 for recorded in ollama.requests if recorded.path == "/api/chat")


# Failures Ollama reports before any answer: the status reaches the client, streamed or not.
BEFORE_ANY_ANSWER = {
    "runner-crashed-on-load": ({"fail_status": 500}, {}, 502, "upstream_error", False),
    "wrong-option-type": ({}, {"options": {"num_ctx": "big"}}, 502, "upstream_error", False),
    "forbidden-host": ({"fail_status": 403, "fail_error": None}, {}, 502, "upstream_error", False),
    "busy": ({"fail_status": 503, "fail_error": BUSY}, {}, 503, "ollama_busy", True),
    "hung-up-before-answering": ({"drop_after_tokens": 0}, {}, 503, "ollama_unavailable", True),
}
# Failures in the middle of a non-streamed answer (Ollama sends its status at the end).
MID_ANSWER = {
    "runner-crashed-mid-answer": ({"error_after_tokens": 2}, {}, 502, "upstream_error", False),
    "answer-not-json": ({"garbage_after_tokens": 2}, {}, 502, "upstream_error", False),
}
CASES = [
    pytest.param(*case, stream, id=f"{name}-{'stream' if stream else 'whole'}")
    for name, case in BEFORE_ANY_ANSWER.items()
    for stream in (False, True)
] + [pytest.param(*case, False, id=name) for name, case in MID_ANSWER.items()]


@pytest.mark.parametrize(("knobs", "extra_body", "status", "code", "may_heal", "stream"), CASES)
def test_the_sdk_retries_only_failures_that_may_heal(
    retrying_client, ollama, knobs, extra_body, status, code, may_heal, stream
):
    ollama.configure(**knobs)
    with pytest.raises(openai.APIStatusError) as caught:
        retrying_client.chat.completions.create(
            model="llama3.2", messages=HELLO, stream=stream, extra_body=extra_body
        )
    assert (caught.value.status_code, caught.value.body["code"]) == (status, code)
    assert caught.value.response.headers["x-should-retry"] == str(may_heal).lower()
    assert chat_attempts(ollama) == (ATTEMPTS_WHEN_RETRIED if may_heal else 1)
