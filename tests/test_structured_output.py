"""response_format through the SDK: JSON mode and JSON schemas become Ollama's ``format``."""

import json

import pydantic

HELLO = [{"role": "user", "content": "Greet me in JSON"}]


class Greeting(pydantic.BaseModel):
    reply: str


def test_json_object_sends_format_json(openai_client, ollama):
    answer = openai_client.chat.completions.create(
        model="llama3.2", messages=HELLO, response_format={"type": "json_object"}
    )
    assert ollama.last_request("/api/chat").body["format"] == "json"
    assert "reply" in json.loads(answer.choices[0].message.content)


def test_sdk_parse_sends_the_schema_and_gets_a_parsed_object(openai_client, ollama):
    answer = openai_client.chat.completions.parse(
        model="llama3.2", messages=HELLO, response_format=Greeting
    )
    schema = ollama.last_request("/api/chat").body["format"]
    assert schema["properties"] == {"reply": {"title": "Reply", "type": "string"}}
    # The stand-in answers a format with {"reply": <its usual text>}, which the SDK parses.
    assert answer.choices[0].message.parsed == Greeting(reply="Hello! You said: Greet me in JSON")


def test_text_format_sends_no_format(openai_client, ollama):
    openai_client.chat.completions.create(
        model="llama3.2", messages=HELLO, response_format={"type": "text"}
    )
    assert "format" not in ollama.last_request("/api/chat").body
