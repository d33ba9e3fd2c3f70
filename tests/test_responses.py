"""The Responses API through the official SDK: create (text, tools, formats, images, reasoning),
the stream helper, parse, stored responses (retrieve, delete, input items, continuation, item
references)."""

import base64
import json

import openai
import pydantic
import pytest

from ollama_standin import tokenize as ollama_tokens

PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082"
    )
).decode()
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "strict": False,
}


class Greeting(pydantic.BaseModel):
    reply: str


def sent_messages(ollama):
    return ollama.last_request("/api/chat").body["messages"]


def test_text_answer_has_openai_shape(openai_client, ollama):
    response = openai_client.responses.create(
        model="llama3.2", input="Why is the sky blue?", instructions="Answer briefly."
    )
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == "llama3.2"
    assert response.output_text == "Hello! You said: Why is the sky blue?"
    [message] = response.output
    assert (message.type, message.role, message.status) == ("message", "assistant", "completed")
    assert message.id.startswith("msg_")
    # The stand-in counts a prompt's words plus 10 (its stand-in for a chat template).
    assert response.usage.input_tokens == 2 + 5 + 10
    assert response.usage.output_tokens == len(ollama_tokens(response.output_text))
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.instructions == "Answer briefly."
    assert sent_messages(ollama) == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Why is the sky blue?"},
    ]


def test_sampling_settings_reach_ollama_and_are_echoed(openai_client, ollama):
    response = openai_client.responses.create(
        model="llama3.2",
        input="hi",
        temperature=0.3,
        top_p=0.9,
        max_output_tokens=50,
        metadata={"ticket": "42"},
        extra_body={"options": {"num_ctx": 8192}, "keep_alive": "10m"},
    )
    body = ollama.last_request("/api/chat").body
    assert body["options"] == {"temperature": 0.3, "top_p": 0.9, "num_predict": 50, "num_ctx": 8192}
    assert body["keep_alive"] == "10m"
    assert (response.temperature, response.top_p, response.max_output_tokens) == (0.3, 0.9, 50)
    assert response.metadata == {"ticket": "42"}


def test_token_limit_makes_an_incomplete_response(openai_client, ollama):
    response = openai_client.responses.create(
        model="llama3.2", input="tell me a long story", max_output_tokens=3
    )
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete"
    assert len(ollama_tokens(response.output_text)) == 3


def test_tool_round_trip_with_function_call_output(openai_client, ollama):
    ollama.tool_calls = [{"name": "get_weather", "arguments": {"city": "Tokyo"}}]
    first = openai_client.responses.create(
        model="llama3.2", input="Weather in Tokyo?", tools=[WEATHER], store=False
    )
    [call] = first.output
    assert call.type == "function_call"
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Tokyo"})
    assert call.call_id.startswith("call_") and call.id.startswith("fc_")
    assert ollama.last_request("/api/chat").body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": WEATHER["parameters"],
                "strict": False,
            },
        }
    ]
    second = openai_client.responses.create(
        model="llama3.2",
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "Weather in Tokyo?"},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 22 C"},
        ],
    )
    assert second.output_text == "From the tools: get_weather says sunny, 22 C"
    messages = sent_messages(ollama)
    assert messages[1]["tool_calls"] == [
        {"id": call.call_id, "function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}
    ]
    assert messages[2] == {"role": "tool", "content": "sunny, 22 C", "tool_name": "get_weather"}


def test_namespace_tools_are_offered_flat_and_calls_name_their_namespace(openai_client, ollama):
    ollama.tool_calls = [{"name": "exec_command", "arguments": {"cmd": "ls"}}]
    namespace = {
        "type": "namespace",
        "name": "shell",
        "description": "Run commands",
        "tools": [{**WEATHER, "name": "exec_command", "description": "Run a command"}],
    }
    response = openai_client.responses.create(
        model="llama3.2",
        input="list files",
        tools=[namespace, {"type": "web_search", "external_web_access": False}],
    )
    offered = [tool["function"]["name"] for tool in ollama.last_request("/api/chat").body["tools"]]
    assert offered == ["exec_command"]
    [call] = response.output
    assert (call.name, call.namespace) == ("exec_command", "shell")


def test_json_schema_format_and_parse(openai_client, ollama):
    parsed = openai_client.responses.parse(
        model="llama3.2", input="Greet me in JSON", text_format=Greeting
    )
    schema = ollama.last_request("/api/chat").body["format"]
    assert schema["properties"] == {"reply": {"title": "Reply", "type": "string"}}
    assert isinstance(parsed.output_parsed, Greeting)
    assert parsed.text.format.type == "json_schema"


def test_image_input_reaches_ollama_as_base64(openai_client, ollama):
    ollama.add_model("llava:7b", capabilities=["completion", "vision"])
    openai_client.responses.create(
        model="llava:7b",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}"},
                ],
            }
        ],
    )
    assert sent_messages(ollama) == [
        {"role": "user", "content": "What is this?", "images": [PIXEL]}
    ]


def test_remote_image_is_refused_without_fetching(openai_client, ollama):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.responses.create(
            model="llama3.2",
            input=[
                {
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": "https://example.com/a.png"}],
                }
            ],
        )
    assert caught.value.body["param"] == "input.[0].content.[0].image_url"
    assert caught.value.body["code"] == "invalid_image_url"
    assert ollama.requests == []


def test_reasoning_comes_back_as_an_item_and_goes_back_as_thinking(openai_client, ollama):
    ollama.thinking = "Two and two make four."
    response = openai_client.responses.create(
        model="qwen3:8b",
        input="What is 2+2?",
        reasoning={"effort": "low", "summary": "auto"},
        include=["reasoning.encrypted_content"],
        store=False,
    )
    assert ollama.last_request("/api/chat").body["think"] == "low"
    reasoning, message = response.output
    assert reasoning.type == "reasoning"
    assert reasoning.content[0].text == "Two and two make four."
    assert reasoning.summary[0].text == "Two and two make four."
    assert message.content[0].text.startswith("Hello!")
    # A client that keeps no state sends the items back, the thinking only inside
    # encrypted_content, as Codex does with store: false.
    carried = {"type": "reasoning", "id": reasoning.id, "summary": [],
               "encrypted_content": reasoning.encrypted_content}  # fmt: skip
    openai_client.responses.create(
        model="qwen3:8b",
        input=[
            {"role": "user", "content": "What is 2+2?"},
            carried,
            message.model_dump(exclude_none=True),
            {"role": "user", "content": "And 3+3?"},
        ],
    )
    assert sent_messages(ollama)[1] == {
        "role": "assistant",
        "content": message.content[0].text,
        "thinking": "Two and two make four.",
    }


def test_stream_helper_assembles_text_and_events_are_numbered(openai_client, ollama):
    seen = []
    with openai_client.responses.stream(model="llama3.2", input="Count to three") as stream:
        for event in stream:
            seen.append(event)
        final = stream.get_final_response()
    assert final.output_text == "Hello! You said: Count to three"
    types = [event.type for event in seen]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [event.sequence_number for event in seen] == list(range(len(seen)))
    deltas = "".join(e.delta for e in seen if e.type == "response.output_text.delta")
    assert deltas == final.output_text
    assert final.usage.output_tokens > 0


def test_streamed_tool_call_events(openai_client, ollama):
    ollama.tool_calls = [{"name": "get_weather", "arguments": {"city": "Oslo"}}]
    stream = openai_client.responses.create(
        model="llama3.2", input="Weather in Oslo?", tools=[WEATHER], stream=True
    )
    events = list(stream)
    types = [event.type for event in events]
    assert "response.function_call_arguments.done" in types
    done = [e for e in events if e.type == "response.output_item.done"]
    assert [e.item.type for e in done] == ["function_call"]
    assert json.loads(done[0].item.arguments) == {"city": "Oslo"}
    assert events[-1].response.output[0].call_id == done[0].item.call_id


def test_failure_mid_stream_ends_with_response_failed(openai_client, ollama):
    ollama.error_after_tokens = 2
    stream = openai_client.responses.create(model="llama3.2", input="Hello there", stream=True)
    events = list(stream)
    assert events[-1].type == "response.failed"
    assert events[-1].response.status == "failed"
    assert events[-1].response.error.code == "upstream_error"
    assert "runner" in events[-1].response.error.message


def test_stored_response_is_retrieved_listed_continued_and_deleted(openai_client, ollama):
    first = openai_client.responses.create(model="llama3.2", input="My name is Ada.")
    assert openai_client.responses.retrieve(first.id).output_text == first.output_text
    second = openai_client.responses.create(
        model="llama3.2", input="What is my name?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    assert sent_messages(ollama) == [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "What is my name?"},
    ]
    items = openai_client.responses.input_items.list(second.id)
    assert [item.type for item in items.data] == ["message", "message", "message"]
    assert items.data[0].content[0].text == "What is my name?"
    assert items.data[2].content[0].text == "My name is Ada."
    ascending = openai_client.responses.input_items.list(second.id, order="asc", limit=1)
    assert ascending.data[0].content[0].text == "My name is Ada." and ascending.has_more
    openai_client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve(second.id)


def test_an_item_reference_stands_for_the_stored_item(openai_client, ollama):
    first = openai_client.responses.create(model="llama3.2", input="My name is Ada.")
    second = openai_client.responses.create(
        model="llama3.2",
        input=[
            {"role": "user", "content": "My name is Ada."},
            {"type": "item_reference", "id": first.output[0].id},
            {"role": "user", "content": "What is my name?"},
        ],
    )
    assert sent_messages(ollama)[1] == {"role": "assistant", "content": first.output_text}
    # The new response's input holds the item itself, under its own id.
    referenced = openai_client.responses.input_items.list(second.id, order="asc").data[1]
    assert (referenced.id, referenced.role) == (first.output[0].id, "assistant")
    assert referenced.content[0].text == first.output_text
    unstored = openai_client.responses.create(model="llama3.2", input="hi", store=False)
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.responses.create(
            model="llama3.2", input=[{"type": "item_reference", "id": unstored.output[0].id}]
        )
    assert (caught.value.body["code"], caught.value.body["param"]) == (
        "invalid_value",
        "input.[0].id",
    )
    assert caught.value.body["message"].startswith(f"Item with id '{unstored.output[0].id}'")


def test_unknown_previous_response_is_refused_naming_the_param(openai_client, ollama):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.responses.create(
            model="llama3.2", input="hi", previous_response_id="resp_doesnotexist"
        )
    assert caught.value.body["param"] == "previous_response_id"
    assert caught.value.body["code"] == "previous_response_not_found"
    assert ollama.requests == []


def test_store_false_is_not_kept(openai_client, ollama):
    response = openai_client.responses.create(model="llama3.2", input="hi", store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve(response.id)


def test_a_streamed_response_is_stored_before_its_last_event(openai_client, ollama):
    stream = openai_client.responses.create(model="llama3.2", input="My name is Ada.", stream=True)
    for event in stream:
        if event.type == "response.completed":
            # Continue at once, while the first stream is still open.
            follow_up = openai_client.responses.create(
                model="llama3.2", input="Who am I?", previous_response_id=event.response.id
            )
            break
    stream.close()
    assert follow_up.previous_response_id == event.response.id
    assert sent_messages(ollama)[0] == {"role": "user", "content": "My name is Ada."}
