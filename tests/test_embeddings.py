"""POST /v1/embeddings: strings in, vectors out, as floats or base64 (the Python SDK's default),
with dimensions honoured, usage counted and data in input order."""

import base64
import math
import struct

import openai
import pytest
import requests

from ollama_openai import schemas
from ollama_openai.errors import ApiError
from ollama_openai.translate import embeddings

EMBEDDER = "nomic-embed-text"  # the stand-in's nomic-bert model: 768 dimensions


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"input": "x"}, "model", "missing_required_parameter"),
        ({"model": EMBEDDER}, "input", "invalid_type"),
        ({"model": EMBEDDER, "input": []}, "input", "invalid_type"),
        ({"model": EMBEDDER, "input": ""}, "input", "invalid_value"),
        ({"model": EMBEDDER, "input": ["a", ""]}, "input.[1]", "invalid_value"),
        ({"model": EMBEDDER, "input": [1, 2, 3]}, "input", "unsupported_value"),
        ({"model": EMBEDDER, "input": [[1, 2], [3]]}, "input", "unsupported_value"),
        (
            {"model": EMBEDDER, "input": "x", "encoding_format": "int8"},
            "encoding_format",
            "invalid_value",
        ),
        ({"model": EMBEDDER, "input": "x", "dimensions": 0}, "dimensions", "invalid_value"),
        ({"model": EMBEDDER, "input": "x", "pooling": "mean"}, "pooling", "unknown_parameter"),
    ],
)
def test_bad_embedding_requests_are_400_naming_the_param(body, param, code):
    with pytest.raises(ApiError) as caught:
        schemas.validate_embedding_request(body)
    assert (caught.value.status, caught.value.param, caught.value.code) == (400, param, code)


def test_request_maps_to_ollama_embed():
    body = {"model": "alias", "input": "hi", "dimensions": 8, "user": "u", "keep_alive": "1m"}
    payload = embeddings.embedding_request_to_ollama(schemas.validate_embedding_request(body), "m")
    assert payload == {"model": "m", "input": ["hi"], "dimensions": 8, "keep_alive": "1m"}


@pytest.mark.parametrize(
    ("encoding_format", "decode"),
    [
        (None, lambda value: value),
        ("float", lambda value: value),
        ("base64", lambda value: list(struct.unpack("<2f", base64.b64decode(value)))),
    ],
)
def test_answer_encodings(encoding_format, decode):
    answer = {"embeddings": [[0.5, -0.25]], "prompt_eval_count": 4}
    result = embeddings.ollama_embed_to_openai(
        answer, model="m", encoding_format=encoding_format, dimensions=None
    )
    assert decode(result["data"][0]["embedding"]) == [0.5, -0.25]
    assert result["usage"] == {"prompt_tokens": 4, "total_tokens": 4}


def test_longer_vectors_than_dimensions_are_cut_and_normalised():
    answer = {"embeddings": [[3.0, 4.0, 12.0]]}
    result = embeddings.ollama_embed_to_openai(
        answer, model="m", encoding_format="float", dimensions=2
    )
    assert result["data"][0]["embedding"] == pytest.approx([0.6, 0.8])


# --- Through the official SDK, against the stand-in. ---


def test_sdk_default_base64_decodes_to_ollamas_vectors(openai_client, ollama):
    result = openai_client.embeddings.create(model=EMBEDDER, input=["first", "second"])
    sent = ollama.last_request("/api/embed")
    # The Python SDK asks for base64 unless told otherwise, and decodes it itself.
    assert sent.body["input"] == ["first", "second"]
    assert [item.index for item in result.data] == [0, 1]
    assert all(len(item.embedding) == 768 for item in result.data)
    assert result.data[0].embedding != result.data[1].embedding
    assert math.isclose(sum(v * v for v in result.data[0].embedding), 1.0, rel_tol=1e-4)
    assert result.usage.prompt_tokens > 0
    assert result.usage.total_tokens == result.usage.prompt_tokens
    assert result.model == EMBEDDER


def test_float_and_base64_carry_the_same_vector(openai_client):
    as_float = openai_client.embeddings.create(
        model=EMBEDDER, input="same text", encoding_format="float"
    )
    as_base64 = openai_client.embeddings.create(
        model=EMBEDDER, input="same text", encoding_format="base64"
    )
    # Asked for explicitly, base64 is handed over undecoded: little-endian float32.
    raw = base64.b64decode(as_base64.data[0].embedding)
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert decoded == pytest.approx(as_float.data[0].embedding, rel=1e-6)


def test_dimensions_are_honoured(openai_client, ollama):
    result = openai_client.embeddings.create(model=EMBEDDER, input="short", dimensions=64)
    assert len(result.data[0].embedding) == 64
    assert ollama.last_request("/api/embed").body["dimensions"] == 64


def test_raw_float_answer_shape(server, ollama):
    body = {"model": EMBEDDER, "input": "hello", "encoding_format": "float"}
    answer = requests.post(f"{server.url}/v1/embeddings", json=body, timeout=10).json()
    assert answer["object"] == "list"
    assert answer["data"][0]["object"] == "embedding"
    assert isinstance(answer["data"][0]["embedding"][0], float)


def test_unknown_embedding_model_is_404(openai_client):
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.embeddings.create(model="text-embedding-3-small", input="x")
    assert caught.value.body["code"] == "model_not_found"


def test_token_arrays_are_refused(openai_client, ollama):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.embeddings.create(model=EMBEDDER, input=[[101, 2023]])
    assert caught.value.body["param"] == "input"
    assert ollama.requests == []
