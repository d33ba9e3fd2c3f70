"""Context windows: a prompt that does not fit is a 400 ``context_length_exceeded`` (before a
stream and inside one), truncation when asked for, ``finish_reason: "length"`` when a
generation fills the window, cached prompt tokens; unit rules first, then the official SDK
against the stand-in, which counts a word as a token and 10 for the template."""

import textwrap

import openai
import pytest
import requests
import responses

from ollama_openai.errors import ApiError
from ollama_openai.ollama import OllamaClient
from ollama_openai.translate.answers import total_usage, usage
from tests.conftest import FAKE_OLLAMA

OVERFLOW = {"error": "the input length exceeds the context length"}
# A window of 64 tokens: a conversation of 100 words does not fit.
SMALL_WINDOW = 64


def words(count):
    return " ".join(f"w{i}" for i in range(count))


LONG = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": words(60)},
    {"role": "assistant", "content": words(30)},
    {"role": "user", "content": "And now?"},
]


# --- Ollama's overflow answer -> context_length_exceeded. ---


@responses.activate
@pytest.mark.parametrize(
    ("path", "param"),
    [("/api/chat", "messages"), ("/api/generate", "prompt"), ("/api/embed", "input")],
)
def test_ollamas_overflow_answer_is_context_length_exceeded(path, param):
    responses.post(f"{FAKE_OLLAMA}{path}", status=400, json=OVERFLOW)
    client = OllamaClient(FAKE_OLLAMA, timeout=2, connect_timeout=1)
    with pytest.raises(ApiError) as caught:
        client.post(path, {"model": "m", "options": {"num_ctx": 8192}})
    error = caught.value
    assert (error.status, error.code, error.param, error.type) == (
        400,
        "context_length_exceeded",
        param,
        "invalid_request_error",
    )
    assert "context window of 8192 tokens" in error.message


@responses.activate
def test_an_overflow_line_inside_a_stream_is_context_length_exceeded():
    responses.post(
        f"{FAKE_OLLAMA}/api/chat",
        body=b'{"error": "the input length exceeds the context length"}\n',
    )
    stream = OllamaClient(FAKE_OLLAMA, timeout=2, connect_timeout=1).stream(
        "/api/chat", {"model": "m"}
    )
    with pytest.raises(ApiError) as caught:
        list(stream.lines())
    assert (caught.value.code, caught.value.param) == ("context_length_exceeded", "messages")
    stream.close()


@responses.activate
def test_other_refusals_stay_ollamas():
    responses.post(f"{FAKE_OLLAMA}/api/chat", status=400, json={"error": "invalid message format"})
    with pytest.raises(ApiError) as caught:
        OllamaClient(FAKE_OLLAMA, timeout=2, connect_timeout=1).post("/api/chat", {"model": "m"})
    assert caught.value.code == "ollama_bad_request"


@pytest.mark.parametrize(
    ("answers", "details"),
    [
        ([{"prompt_eval_count": 30, "eval_count": 5}], None),
        ([{"prompt_eval_count": 30, "prompt_eval_cached_count": 24, "eval_count": 5}], 24),
        (
            [
                {"prompt_eval_count": 30, "prompt_eval_cached_count": 24},
                {"prompt_eval_count": 30, "prompt_eval_cached_count": 0},
            ],
            24,
        ),
    ],
)
def test_cached_prompt_tokens_are_told_only_when_ollama_counts_them(answers, details):
    totals = total_usage(answers)
    if details is None:
        assert "prompt_tokens_details" not in totals
        assert "prompt_tokens_details" not in usage(answers[0])
    else:
        assert totals["prompt_tokens_details"] == {"cached_tokens": details}


# --- End to end. ---


@pytest.fixture(scope="module")
def windowed_gateway(gateway_factory, ollama_url, tmp_path_factory):
    """A gateway whose models file gives llama3.2 a window of 64 tokens (and keeps Ollama's
    cutting for the alias `cutting`); keep-alives every 0.2 s, so a slow Ollama answers inside
    a stream that has begun."""
    path = tmp_path_factory.mktemp("windows") / "models.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [models."llama3.2"]
            options = {{ num_ctx = {SMALL_WINDOW} }}

            [models.nomic-embed-text]
            options = {{ num_ctx = 16 }}

            [aliases.cutting]
            model = "llama3.2"
            context_overflow = "truncate"
            """
        )
    )
    return gateway_factory(ollama_url, MODELS_FILE=str(path), KEEPALIVE_INTERVAL="0.2")


@pytest.fixture
def client(windowed_gateway, ollama):
    with openai.OpenAI(base_url=f"{windowed_gateway.url}/v1", api_key="k", max_retries=0) as sdk:
        yield sdk


@pytest.mark.parametrize("stream", [False, True])
def test_a_long_conversation_is_bad_request_context_length_exceeded(client, ollama, stream):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="llama3.2", messages=LONG, stream=stream)
    assert caught.value.body["code"] == "context_length_exceeded"
    assert caught.value.body["param"] == "messages"
    sent = ollama.last_request("/api/chat").body
    assert (sent["truncate"], sent["shift"], sent["options"]["num_ctx"]) == (False, False, 64)


@pytest.mark.parametrize("stream", [False, True])
def test_a_long_responses_input_is_bad_request_context_length_exceeded(client, stream):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="llama3.2", input=LONG, stream=stream)
    assert caught.value.body["code"] == "context_length_exceeded"
    assert caught.value.body["param"] == "input"


def test_an_overflow_after_the_stream_began_is_an_error_event(client, ollama):
    # Ollama answers after the model loaded; the gateway has sent the 200 by then.
    ollama.delay_first_byte = 1.5
    stream = client.chat.completions.create(model="llama3.2", messages=LONG, stream=True)
    with pytest.raises(openai.APIError) as caught:
        list(stream)
    assert caught.value.body["code"] == "context_length_exceeded"
    assert not isinstance(caught.value, openai.APIStatusError)


def test_an_overflow_after_the_responses_stream_began_is_response_failed(client, ollama):
    ollama.delay_first_byte = 1.5
    events = list(client.responses.create(model="llama3.2", input=LONG, stream=True))
    assert [event.type for event in events] == [
        "response.created",
        "response.in_progress",
        "response.failed",
    ]
    assert events[-1].response.error.code == "context_length_exceeded"


def test_truncation_auto_lets_ollama_cut_the_conversation(client, ollama):
    response = client.responses.create(model="llama3.2", input=LONG, truncation="auto")
    assert response.status == "completed" and response.truncation == "auto"
    sent = ollama.last_request("/api/chat").body
    assert sent["truncate"] is True and "shift" not in sent
    # The stand-in kept the system message and the last turns that fit: 64 tokens at most.
    assert response.usage.input_tokens <= SMALL_WINDOW
    assert client.responses.create(model="llama3.2", input="hi").truncation == "disabled"


def test_a_models_context_overflow_setting_keeps_ollamas_cutting(client, ollama):
    answer = client.chat.completions.create(model="cutting", messages=LONG)
    assert answer.choices[0].finish_reason == "stop"
    assert ollama.last_request("/api/chat").body["truncate"] is True
    assert answer.usage.prompt_tokens <= SMALL_WINDOW


def test_the_request_may_ask_for_cutting_itself(client, ollama):
    answer = client.chat.completions.create(
        model="llama3.2", messages=LONG, extra_body={"truncate": True}
    )
    assert answer.choices[0].message.content
    assert ollama.last_request("/api/chat").body["truncate"] is True


def test_a_generation_that_fills_the_window_finishes_with_length(client, ollama):
    ollama.reply = words(100)
    answer = client.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": words(40)}]
    )
    assert answer.choices[0].finish_reason == "length"
    # 64 - (40 words + 10 for the template): the rest of the window.
    assert answer.usage.completion_tokens == 14
    chunks = list(
        client.chat.completions.create(
            model="llama3.2", messages=[{"role": "user", "content": words(40)}], stream=True
        )
    )
    assert chunks[-1].choices[0].finish_reason == "length"


def test_an_embedding_input_over_the_window_is_context_length_exceeded(client, ollama):
    assert client.embeddings.create(model="nomic-embed-text", input="a short text").data
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="nomic-embed-text", input=["short", words(40)])
    assert (caught.value.body["code"], caught.value.body["param"]) == (
        "context_length_exceeded",
        "input",
    )


def test_cutting_for_every_model_is_a_setting(gateway_factory, ollama_url, ollama):
    gateway = gateway_factory(ollama_url, CONTEXT_OVERFLOW="truncate")
    answer = requests.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "llama3.2", "messages": LONG, "options": {"num_ctx": SMALL_WINDOW}},
        timeout=10,
    )
    assert answer.status_code == 200
    assert ollama.last_request("/api/chat").body["truncate"] is True


def test_cached_prompt_tokens_reach_the_usage(client, ollama):
    answer = client.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.usage.prompt_tokens_details is None
    ollama.cached_prompt_tokens = 8
    answer = client.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.usage.prompt_tokens_details.cached_tokens == 8
    chunks = list(
        client.chat.completions.create(
            model="llama3.2",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == 8
    response = client.responses.create(model="llama3.2", input="hi")
    assert response.usage.input_tokens_details.cached_tokens == 8
