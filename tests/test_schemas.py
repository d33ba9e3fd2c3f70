"""Request validation: every bad field is a 400 naming the param; good requests pass unchanged."""

import pytest

from ollama_openai import schemas
from ollama_openai.config import Settings
from ollama_openai.errors import ApiError

# The limits a default gateway validates with (MAX_MESSAGES, MAX_N).
LIMITS = {"max_messages": Settings().max_messages, "max_n": Settings().max_n}

MSGS = [{"role": "user", "content": "hi"}]


def chat(**fields):
    return {"model": "llama3.2", "messages": MSGS, **fields}


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ([], None, "invalid_type"),
        ("text", None, "invalid_type"),
        ({"messages": MSGS}, "model", "missing_required_parameter"),
        ({"model": "", "messages": MSGS}, "model", "invalid_type"),
        ({"model": 5, "messages": MSGS}, "model", "invalid_type"),
        ({"model": "m"}, "messages", "missing_required_parameter"),
        (chat(messages=[]), "messages", "invalid_type"),
        (chat(messages="hi"), "messages", "invalid_type"),
        (chat(messages=["hi"]), "messages.[0]", "invalid_type"),
        (chat(messages=[{"role": "wizard", "content": "x"}]), "messages.[0].role", "invalid_value"),
        (chat(messages=[{"content": "x"}]), "messages.[0].role", "invalid_value"),
        (
            chat(messages=[{"role": "tool", "content": "x"}]),
            "messages.[0].tool_call_id",
            "invalid_type",
        ),
        (chat(messages=[{"role": "user", "content": 5}]), "messages.[0].content", "invalid_type"),
        (
            chat(messages=[{"role": "user", "content": None}]),
            "messages.[0].content",
            "invalid_type",
        ),
        (
            chat(messages=[{"role": "user", "content": [{"type": "text", "text": 1}]}]),
            "messages.[0].content.[0].text",
            "invalid_type",
        ),
        (
            chat(messages=[{"role": "user", "content": [{"type": "input_audio"}]}]),
            "messages.[0].content.[0].type",
            "invalid_value",
        ),
        (
            chat(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
                        ],
                    }
                ]
            ),
            "messages.[0].content.[0].image_url.url",
            "invalid_image_url",
        ),
        (
            chat(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/png,raw"}}
                        ],
                    }
                ]
            ),
            "messages.[0].content.[0].image_url.url",
            "invalid_image_url",
        ),
        (
            chat(messages=[{"role": "user", "content": "x", "foo": 1}]),
            "messages.[0].foo",
            "unsupported_parameter",
        ),
        (chat(temperature=2.5), "temperature", "invalid_value"),
        (chat(temperature=-0.1), "temperature", "invalid_value"),
        (chat(temperature="hot"), "temperature", "invalid_type"),
        (chat(temperature=True), "temperature", "invalid_type"),
        (chat(top_p=1.5), "top_p", "invalid_value"),
        (chat(max_tokens=-1), "max_tokens", "invalid_value"),
        (chat(max_tokens=0), "max_tokens", "invalid_value"),
        (chat(max_tokens=1.5), "max_tokens", "invalid_type"),
        (chat(max_tokens=5, max_completion_tokens=5), "max_completion_tokens", "invalid_value"),
        (chat(frequency_penalty=3), "frequency_penalty", "invalid_value"),
        (chat(seed="x"), "seed", "invalid_type"),
        (chat(seed=2**70), "seed", "invalid_value"),
        (chat(stop=5), "stop", "invalid_type"),
        (chat(stop=["a", 1]), "stop", "invalid_type"),
        (chat(stop=["a", "b", "c", "d", "e"]), "stop", "invalid_value"),
        (chat(stream="yes"), "stream", "invalid_type"),
        (chat(stream_options={"include_usage": True}), "stream_options", "invalid_value"),
        (
            chat(stream=True, stream_options={"include_usage": "y"}),
            "stream_options.include_usage",
            "invalid_type",
        ),
        (
            chat(stream=True, stream_options={"chunk": 1}),
            "stream_options.chunk",
            "unsupported_parameter",
        ),
        (chat(response_format={"type": "xml"}), "response_format.type", "invalid_value"),
        (chat(response_format="json"), "response_format", "invalid_type"),
        (chat(reasoning_effort="maximum"), "reasoning_effort", "invalid_value"),
        (chat(n=9), "n", "invalid_value"),
        (chat(top_logprobs=3), "top_logprobs", "invalid_value"),
        (chat(logprobs=True, top_logprobs=21), "top_logprobs", "invalid_value"),
        (chat(tools=[{"type": "web_search"}]), "tools.[0].type", "unsupported_value"),
        (chat(audio={"voice": "x"}), "audio", "unsupported_parameter"),
        (chat(frobnicate=1), "frobnicate", "unknown_parameter"),
        (chat(options=[1]), "options", "invalid_type"),
        (chat(think="very"), "think", "invalid_value"),
        # 1 == True in Python, but Ollama refuses a number.
        (chat(think=1), "think", "invalid_value"),
    ],
)
def test_bad_chat_requests_are_400_naming_the_param(body, param, code):
    with pytest.raises(ApiError) as caught:
        schemas.validate_chat_request(body, **LIMITS)
    assert (caught.value.status, caught.value.param, caught.value.code) == (400, param, code)
    assert caught.value.type == "invalid_request_error"


@pytest.mark.parametrize(
    "body",
    [
        chat(),
        chat(temperature=0, top_p=1, max_tokens=1, seed=-5, stop="x"),
        chat(max_completion_tokens=100, stop=["a", "b", "c", "d"]),
        chat(
            messages=[{"role": "developer", "content": "x"}, {"role": "assistant", "content": None}]
        ),
        chat(n=1, logprobs=False, tools=[], tool_choice="auto", logit_bias={}),
        chat(user="u1", store=False, metadata={"a": "b"}, service_tier="auto"),
        chat(temperature=None, max_tokens=None, stop=None),
        chat(stream=True, stream_options={"include_usage": True}),
        chat(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}),
        chat(options={"num_ctx": 8192}, keep_alive="5m", think=False),
        chat(reasoning_effort="xhigh"),
        chat(reasoning_effort="max", think="max"),
        chat(
            messages=[
                {
                    "role": "user",
                    "name": "ann",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                    ],
                }
            ]
        ),
    ],
)
def test_good_chat_requests_pass_unchanged(body):
    assert schemas.validate_chat_request(body, **LIMITS) is body


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": "m"}, "prompt", "invalid_type"),
        ({"model": "m", "prompt": 5}, "prompt", "invalid_type"),
        ({"model": "m", "prompt": [1, 2, 3]}, "prompt", "unsupported_value"),
        ({"model": "m", "prompt": [], "n": 1}, "prompt", "invalid_type"),
        ({"model": "m", "prompt": ["a"] * 5, "n": 2}, "n", "invalid_value"),  # 10 > MAX_N
        ({"model": "m", "prompt": "x", "suffix": 3}, "suffix", "invalid_type"),
        ({"model": "m", "prompt": "x", "echo": "yes"}, "echo", "invalid_type"),
        ({"model": "m", "prompt": "x", "best_of": 3}, "best_of", "unsupported_parameter"),
        ({"model": "m", "prompt": "x", "messages": []}, "messages", "unknown_parameter"),
        ({"model": "m", "prompt": "x", "max_tokens": -3}, "max_tokens", "invalid_value"),
    ],
)
def test_bad_completion_requests_are_400_naming_the_param(body, param, code):
    with pytest.raises(ApiError) as caught:
        schemas.validate_completion_request(body, max_n=LIMITS["max_n"])
    assert (caught.value.status, caught.value.param, caught.value.code) == (400, param, code)


def test_more_messages_than_max_messages_are_refused():
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "Hi"}] * 3}
    assert schemas.validate_chat_request(body, max_messages=3, max_n=1) is body
    with pytest.raises(ApiError) as caught:
        schemas.validate_chat_request(body, max_messages=2, max_n=1)
    assert (caught.value.status, caught.value.param, caught.value.code) == (
        400,
        "messages",
        "array_above_max_length",
    )
