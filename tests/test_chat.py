"""POST /v1/chat/completions (not streamed) through the official SDK, against the stand-in."""

import openai
import pytest

HELLO = [{"role": "user", "content": "Why is the sky blue?"}]


def test_chat_answer_is_what_ollama_produced(openai_client, ollama):
    answer = openai_client.chat.completions.create(model="llama3.2", messages=HELLO)
    assert answer.object == "chat.completion"
    assert answer.id.startswith("chatcmpl-")
    assert answer.model == "llama3.2"
    assert answer.system_fingerprint
    choice = answer.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == ollama.replies[-1]
    assert "Why is the sky blue?" in choice.message.content
    assert choice.finish_reason == "stop"
    done = ollama.last_request("/api/chat")
    assert done.body["stream"] is False
    assert answer.usage.completion_tokens > 0
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_ids_differ_between_answers(openai_client):
    ids = {
        openai_client.chat.completions.create(model="llama3.2", messages=HELLO).id for _ in range(3)
    }
    assert len(ids) == 3


def test_sampling_parameters_reach_ollama_as_options(openai_client, ollama):
    openai_client.chat.completions.create(
        model="llama3.2",
        messages=HELLO,
        temperature=0.3,
        top_p=0.9,
        max_tokens=50,
        stop=["\n\n"],
        seed=7,
        frequency_penalty=0.5,
        presence_penalty=-0.5,
    )
    assert ollama.last_request("/api/chat").body["options"] == {
        "temperature": 0.3,
        "top_p": 0.9,
        "num_predict": 50,
        "stop": ["\n\n"],
        "seed": 7,
        "frequency_penalty": 0.5,
        "presence_penalty": -0.5,
    }


def test_product_defaults_apply_when_unset(openai_client, ollama):
    openai_client.chat.completions.create(model="llama3.2", messages=HELLO)
    assert ollama.last_request("/api/chat").body["options"] == {
        "temperature": 0.7,
        "num_predict": 1000,
    }


def test_empty_defaults_send_nothing(gateway_factory, ollama_url, ollama):
    gateway = gateway_factory(ollama_url, DEFAULT_TEMPERATURE="", DEFAULT_MAX_TOKENS="")
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0) as client:
        client.chat.completions.create(model="llama3.2", messages=HELLO, max_completion_tokens=9)
        assert ollama.last_request("/api/chat").body["options"] == {"num_predict": 9}


def test_max_tokens_reached_is_finish_reason_length(openai_client, ollama):
    answer = openai_client.chat.completions.create(model="llama3.2", messages=HELLO, max_tokens=2)
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage.completion_tokens == 2
    assert answer.choices[0].message.content == ollama.replies[-1]


def test_messages_reach_ollama_with_roles_and_joined_text_parts(openai_client, ollama):
    openai_client.chat.completions.create(
        model="llama3.2",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "system", "content": "You are kind."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "One"}, {"type": "text", "text": "Two"}],
            },
            {"role": "assistant", "content": "Yes?"},
            {"role": "user", "content": "Three"},
        ],
    )
    assert ollama.last_request("/api/chat").body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "You are kind."},
        {"role": "user", "content": "One\nTwo"},
        {"role": "assistant", "content": "Yes?"},
        {"role": "user", "content": "Three"},
    ]


def test_ollama_extras_pass_through_extra_body(openai_client, ollama):
    openai_client.chat.completions.create(
        model="llama3.2",
        messages=HELLO,
        extra_body={"options": {"num_ctx": 8192}, "keep_alive": "10m"},
    )
    body = ollama.last_request("/api/chat").body
    assert body["options"]["num_ctx"] == 8192
    assert body["keep_alive"] == "10m"


def test_unknown_model_raises_not_found(openai_client):
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.chat.completions.create(model="mystery:70b", messages=HELLO)
    assert caught.value.status_code == 404
    assert caught.value.body["code"] == "model_not_found"
    assert caught.value.body["param"] == "model"
    assert "ollama pull mystery:70b" in caught.value.body["message"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.[0].role"),
        ({"n": 9}, "n"),  # above MAX_N
    ],
)
def test_bad_requests_raise_bad_request_naming_the_param(openai_client, ollama, fields, param):
    request = {"model": "llama3.2", "messages": HELLO, **fields}
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(**request)
    assert caught.value.body["param"] == param
    assert caught.value.body["type"] == "invalid_request_error"
    assert ollama.requests == []  # refused before anything reached Ollama


def test_ollama_failure_is_502_with_its_message(openai_client, ollama):
    ollama.fail_status = 500
    ollama.fail_error = "llama runner process has terminated: exit status 2"
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client.chat.completions.create(model="llama3.2", messages=HELLO)
    assert caught.value.status_code == 502
    assert "llama runner process has terminated" in caught.value.body["message"]
