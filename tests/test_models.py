"""GET /v1/models and /v1/models/{id} through the official SDK, against the stand-in."""

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
