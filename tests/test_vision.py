"""Image input: inline data URLs reach Ollama as ``images``; remote URLs are refused."""

import base64

import openai
import pytest

# A 1x1 transparent PNG.
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082"
    )
).decode()


def describe(url):
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
            ],
        }
    ]


def test_data_url_image_reaches_ollama_as_base64(openai_client, ollama):
    ollama.add_model("llava:7b", capabilities=["completion", "vision"])
    answer = openai_client.chat.completions.create(
        model="llava:7b", messages=describe(f"data:image/png;base64,{PIXEL}")
    )
    assert answer.choices[0].message.content
    (message,) = ollama.last_request("/api/chat").body["messages"]
    assert message == {"role": "user", "content": "What is in this picture?", "images": [PIXEL]}


def test_remote_image_url_is_refused_without_fetching(openai_client, ollama):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(
            model="llama3.2", messages=describe("https://example.com/cat.png")
        )
    assert caught.value.body["param"] == "messages.[0].content.[1].image_url.url"
    assert caught.value.body["code"] == "invalid_image_url"
    assert ollama.requests == []
