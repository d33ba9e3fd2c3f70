"""GET /v1/models and /v1/models/{id} through the official SDK, against the stand-in."""

import time

import openai
import pytest


def test_models_list_returns_every_installed_model(openai_client, ollama):
    listed = openai_client.models.list()
    assert [model.id for model in listed.data] == [entry["name"] for entry in ollama.models]
    for model in listed.data:
        assert model.object == "model"
        assert model.owned_by == "ollama"
        assert model.created > 1_600_000_000


def test_empty_model_list_is_an_empty_list(openai_client, ollama):
    ollama.models = []
    assert openai_client.models.list().data == []


@pytest.mark.parametrize(
    "model_id",
    ["llama3.2:latest", "llama3.2", "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"],
)
def test_retrieve_takes_ids_with_colons_and_slashes(openai_client, model_id):
    model = openai_client.models.retrieve(model_id)
    assert model.id == model_id
    assert model.object == "model"


def test_retrieve_unknown_model_is_404_model_not_found(openai_client):
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.models.retrieve("no-such-model:7b")
    assert caught.value.body["code"] == "model_not_found"
    assert "ollama pull no-such-model:7b" in caught.value.body["message"]


# --- What each model can do, and where it is loaded (extra fields the SDK keeps). ---


def test_models_tell_their_capabilities_context_and_loaded_state(openai_client, ollama, ollama_url):
    ollama.add_model("long:8b", num_ctx=16384, capabilities=["completion", "tools", "vision"])
    openai_client.chat.completions.create(
        model="long:8b", messages=[{"role": "user", "content": "hi"}]
    )
    listed = {model.id: model for model in openai_client.models.list().data}
    long, llama = listed["long:8b"], listed["llama3.2:latest"]
    embedder = listed["nomic-embed-text:latest"]
    assert long.capabilities == ["completion", "tools", "vision"]
    # The Modelfile's num_ctx is the window a request gets; the family's maximum is 131072.
    assert (long.context_length, long.max_context_length) == (16384, 131072)
    assert long.loaded is True
    [where] = long.loaded_on
    assert where["server"] == ollama_url and where["context_length"] == 16384
    assert where["expires_at"] > time.time()
    assert embedder.capabilities == ["embedding"]
    assert (embedder.context_length, embedder.max_context_length) == (None, 2048)
    assert (llama.loaded, llama.loaded_on) == (False, [])
    retrieved = openai_client.models.retrieve("long:8b")
    assert (retrieved.context_length, retrieved.capabilities) == (16384, long.capabilities)
