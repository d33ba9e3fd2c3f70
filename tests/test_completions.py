"""POST /v1/completions (not streamed) through the official SDK, against the stand-in."""

import openai
import pytest


def test_completion_answer_is_what_ollama_produced(openai_client, ollama):
    answer = openai_client.completions.create(model="llama3.2", prompt="The capital of France is")
    assert answer.object == "text_completion"
    assert answer.id.startswith("cmpl-")
    assert answer.choices[0].text == ollama.replies[-1]
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.completion_tokens > 0
    sent = ollama.last_request("/api/generate").body
    assert sent["prompt"] == "The capital of France is"
    assert sent["stream"] is False


def test_completion_parameters_reach_ollama(openai_client, ollama):
    ollama.add_model("qwen2.5-coder:1.5b", capabilities=["completion", "insert"])
    openai_client.completions.create(
        model="qwen2.5-coder:1.5b",
        prompt=["def add(a, b):"],
        suffix="\n    return c",
        max_tokens=3,
        temperature=0,
    )
    sent = ollama.last_request("/api/generate").body
    assert sent["prompt"] == "def add(a, b):"
    assert sent["suffix"] == "\n    return c"
    assert sent["options"] == {"temperature": 0, "num_predict": 3}


def test_echo_prepends_the_prompt(openai_client, ollama):
    answer = openai_client.completions.create(model="llama3.2", prompt="Hello", echo=True)
    assert answer.choices[0].text == "Hello" + ollama.replies[-1]


def test_token_limit_is_finish_reason_length(openai_client):
    answer = openai_client.completions.create(model="llama3.2", prompt="Count: 1 2 3", max_tokens=1)
    assert answer.choices[0].finish_reason == "length"


def test_suffix_for_a_model_without_insert_is_a_400_naming_it(openai_client, ollama):
    # llama3.2 has no "insert" capability (/api/show): the gateway refuses fill-in-the-middle.
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.completions.create(model="llama3.2", prompt="def f():", suffix="pass")
    assert "does not support insert" in caught.value.body["message"]
    assert caught.value.body["param"] == "suffix"
    assert ollama.last_request("/api/generate") is None


def test_unknown_model_raises_not_found(openai_client):
    with pytest.raises(openai.NotFoundError):
        openai_client.completions.create(model="nope", prompt="x")


def test_token_array_prompt_is_refused(openai_client, ollama):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.completions.create(model="llama3.2", prompt=[1, 2, 3])
    assert caught.value.body["param"] == "prompt"
