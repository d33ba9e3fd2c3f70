"""logprobs: asked of Ollama (0.12.11+) and returned in OpenAI's chat and legacy shapes."""

import openai
import pytest

from ollama_openai import schemas
from ollama_openai.config import Settings
from ollama_openai.errors import ApiError
from ollama_openai.translate import answers, chat
from ollama_openai.translate.options import SamplingDefaults

HELLO = [{"role": "user", "content": "Say hi"}]
OLLAMA_ENTRY = {
    "token": "Hi",
    "logprob": -0.1,
    "bytes": [72, 105],
    "top_logprobs": [{"token": "Hi", "logprob": -0.1}, {"token": "Hey", "logprob": -2.5}],
}


@pytest.mark.parametrize(
    ("fields", "sent"),
    [
        ({}, {}),
        ({"logprobs": False}, {}),
        ({"logprobs": True}, {"logprobs": True, "top_logprobs": 0}),
        ({"logprobs": True, "top_logprobs": 3}, {"logprobs": True, "top_logprobs": 3}),
    ],
)
def test_chat_logprobs_request(fields, sent):
    body = {"model": "m", "messages": HELLO, **fields}
    payload = chat.chat_request_to_ollama(body, SamplingDefaults())
    assert {k: payload[k] for k in ("logprobs", "top_logprobs") if k in payload} == sent


def test_chat_logprobs_answer_shape():
    assert answers.chat_logprobs([OLLAMA_ENTRY]) == {
        "content": [
            {
                "token": "Hi",
                "logprob": -0.1,
                "bytes": [72, 105],
                "top_logprobs": [
                    {"token": "Hi", "logprob": -0.1, "bytes": [72, 105]},
                    {"token": "Hey", "logprob": -2.5, "bytes": [72, 101, 121]},
                ],
            }
        ],
        "refusal": None,
    }
    assert answers.chat_logprobs(None) is None


def test_completion_logprobs_answer_shape():
    second = {"token": " there", "logprob": -0.3}
    assert answers.completion_logprobs([OLLAMA_ENTRY, second], text_offset=5) == {
        "tokens": ["Hi", " there"],
        "token_logprobs": [-0.1, -0.3],
        "top_logprobs": [{"Hi": -0.1, "Hey": -2.5}, {}],
        "text_offset": [5, 7],
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "prompt": "x", "logprobs": 6}, "logprobs"),
        ({"model": "m", "prompt": "x", "logprobs": 2, "echo": True}, "logprobs"),
    ],
)
def test_bad_completion_logprobs_are_400(body, param):
    with pytest.raises(ApiError) as caught:
        schemas.validate_completion_request(body, max_n=Settings().max_n)
    assert caught.value.param == param


def test_chat_logprobs_through_the_sdk(openai_client, ollama):
    answer = openai_client.chat.completions.create(
        model="llama3.2", messages=HELLO, logprobs=True, top_logprobs=2
    )
    sent = ollama.last_request("/api/chat").body
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)
    content = answer.choices[0].logprobs.content
    assert "".join(item.token for item in content) == answer.choices[0].message.content
    assert all(len(item.top_logprobs) == 2 for item in content)
    assert all(item.top_logprobs[0].token == item.token for item in content)


def test_streamed_chat_logprobs(openai_client, ollama):
    stream = openai_client.chat.completions.create(
        model="llama3.2", messages=HELLO, logprobs=True, stream=True
    )
    tokens, text = [], ""
    for chunk in stream:
        choice = chunk.choices[0]
        text += choice.delta.content or ""
        if choice.logprobs:
            tokens += [item.token for item in choice.logprobs.content]
    assert "".join(tokens) == text == ollama.replies[-1]


@pytest.mark.parametrize("stream", [False, True])
def test_completion_logprobs_through_the_sdk(openai_client, ollama, stream):
    answer = openai_client.completions.create(
        model="llama3.2", prompt="Once", logprobs=2, stream=stream
    )
    chunks = list(answer) if stream else [answer]
    tokens, offsets, text = [], [], ""
    for chunk in chunks:
        choice = chunk.choices[0]
        text += choice.text
        if choice.logprobs:
            tokens += choice.logprobs.tokens
            offsets += choice.logprobs.text_offset
            assert all(len(top) <= 2 for top in choice.logprobs.top_logprobs)
    assert "".join(tokens) == text
    for token, offset in zip(tokens, offsets, strict=True):
        assert text[offset:].startswith(token)
    assert ollama.last_request("/api/generate").body["top_logprobs"] == 2


def test_top_logprobs_without_logprobs_is_a_400(openai_client, ollama):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(model="llama3.2", messages=HELLO, top_logprobs=2)
    assert caught.value.body["param"] == "top_logprobs"
