"""MODEL_ALIASES: OpenAI model names that lead to Ollama models, so apps run unchanged.

Ollama gets the real model; the client sees the name it asked for, in answers, in
``/v1/models`` and in 404s.
"""

import openai
import pytest

ALIASES = "gpt-4o=llama3.2:latest,text-embedding-3-small=nomic-embed-text,gpt-5=not-pulled:1b"
HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def aliased_gateway(gateway_factory, ollama_url):
    return gateway_factory(ollama_url, MODEL_ALIASES=ALIASES)


@pytest.fixture
def client(aliased_gateway, ollama):
    with openai.OpenAI(base_url=f"{aliased_gateway.url}/v1", api_key="k", max_retries=0) as client:
        yield client


def test_chat_reaches_the_real_model_and_answers_with_the_alias(client, ollama):
    answer = client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert answer.model == "gpt-4o"
    assert ollama.last_request("/api/chat").body["model"] == "llama3.2:latest"


def test_streamed_chunks_carry_the_alias(client, ollama):
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))
    assert {chunk.model for chunk in chunks} == {"gpt-4o"}
    assert ollama.last_request("/api/chat").body["model"] == "llama3.2:latest"


def test_completions_and_embeddings_resolve_aliases(client, ollama):
    completion = client.completions.create(model="gpt-4o", prompt="x")
    assert completion.model == "gpt-4o"
    assert ollama.last_request("/api/generate").body["model"] == "llama3.2:latest"
    embedding = client.embeddings.create(model="text-embedding-3-small", input="x")
    assert embedding.model == "text-embedding-3-small"
    assert ollama.last_request("/api/embed").body["model"] == "nomic-embed-text"


def test_models_list_shows_aliases_of_installed_models(client, ollama):
    ids = [model.id for model in client.models.list().data]
    assert ids[: len(ollama.models)] == [entry["name"] for entry in ollama.models]
    assert ids[len(ollama.models) :] == ["gpt-4o", "text-embedding-3-small"]
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.chat.completions.create(model="gpt-5", messages=HELLO),
        lambda c: c.chat.completions.create(model="gpt-5", messages=HELLO, stream=True),
        lambda c: c.embeddings.create(model="gpt-5", input="x"),
        lambda c: c.models.retrieve("gpt-5"),
    ],
)
def test_alias_of_a_missing_model_is_404_naming_both(client, call):
    with pytest.raises(openai.NotFoundError) as caught:
        call(client)
    message = caught.value.body["message"]
    assert "'gpt-5'" in message
    assert "ollama pull not-pulled:1b" in message
    assert caught.value.body["code"] == "model_not_found"
