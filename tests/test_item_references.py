"""Item references: item ids that carry their response's id, and an ``item_reference`` input
item replaced by the stored item it names, under the caller's key only."""

import dataclasses

import pytest

from ollama_openai import create_app, schemas
from ollama_openai.errors import ApiError
from ollama_openai.translate import responses, stored_items
from ollama_openai.translate.options import SamplingDefaults

HEX = "0123456789abcdef" * 2
KEY, OTHER_KEY = "sk-items-alice-0123456789", "sk-items-bob-0123456789"
WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}


@pytest.mark.parametrize(
    ("kind", "index", "expected"),
    [
        ("message", 0, f"msg_{HEX}00"),
        ("reasoning", 1, f"rs_{HEX}01"),
        ("function_call", 2, f"fc_{HEX}02"),
        ("function_call_output", 300, f"fco_{HEX}12c"),
    ],
)
def test_an_item_id_carries_its_response_id(kind, index, expected):
    assert stored_items.item_id(f"resp_{HEX}", kind, index) == expected
    assert stored_items.response_id_of(expected) == f"resp_{HEX}"


@pytest.mark.parametrize(
    "item_id",
    [
        f"msg_{HEX}",  # made before item ids named their response
        "msg_1",
        f"msg_{HEX.upper()}00",
        f"resp_{HEX}00",
        f"call_{HEX}00",
        "",
    ],
)
def test_an_id_of_another_making_names_no_response(item_id):
    assert stored_items.response_id_of(item_id) is None


def test_a_plans_input_and_output_items_are_numbered_in_one_response():
    body = {
        "model": "m",
        "input": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    }
    plan = responses.plan(body, [], SamplingDefaults(), "m")
    answer = plan.answer([{"message": {"thinking": "so", "content": "Ok"}, "done": True}])
    ids = [item["id"] for item in plan.input_items + answer["output"]]
    suffix = plan.response_id.removeprefix("resp_")
    assert ids == [f"msg_{suffix}00", f"msg_{suffix}01", f"rs_{suffix}02", f"msg_{suffix}03"]


STORED_OUTPUT = [
    {
        "id": f"rs_{HEX}01",
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": "so"}],
        "status": "completed",
        "encrypted_content": "ollama-openai:v1:e30=",
    },
    {
        "id": f"msg_{HEX}02",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Ok", "annotations": [], "logprobs": []}],
    },
    {
        "id": f"fc_{HEX}03",
        "type": "function_call",
        "status": "completed",
        "arguments": '{"city": "Oslo"}',
        "call_id": "call_1",
        "name": "get_weather",
        "namespace": "tools",
    },
]
STORED_INPUT = [
    {"id": f"msg_{HEX}00", "type": "message", "role": "user",
     "content": [{"type": "input_text", "text": "Hi"}]},
]  # fmt: skip


@pytest.mark.parametrize("stored", STORED_INPUT + STORED_OUTPUT, ids=lambda item: item["id"][:3])
def test_a_stored_item_comes_back_as_an_input_item_the_validator_takes(stored):
    found = stored_items.stored_item(STORED_INPUT + STORED_OUTPUT, stored["id"])
    expected = dict(stored)
    if stored["type"] == "message" and stored["role"] == "assistant":
        # Log probabilities say nothing to the model.
        expected["content"] = [{"type": "output_text", "text": "Ok", "annotations": []}]
    assert found == expected
    schemas.validate_responses_request({"model": "m", "input": [found]}, max_items=10)


def test_a_found_item_is_a_copy():
    found = stored_items.stored_item(STORED_OUTPUT, f"msg_{HEX}02")
    found["content"][0]["text"] = "changed"
    assert STORED_OUTPUT[1]["content"][0]["text"] == "Ok"


def test_an_id_the_response_does_not_hold_is_not_found():
    assert stored_items.stored_item(STORED_INPUT + STORED_OUTPUT, f"msg_{HEX}04") is None


@pytest.mark.parametrize(
    ("reference", "code", "param"),
    [
        ({"type": "item_reference"}, "missing_required_parameter", "input.[0].id"),
        ({"type": "item_reference", "id": 7}, "invalid_type", "input.[0].id"),
        ({"type": "item_reference", "id": "m", "role": "user"}, "unsupported_parameter",
         "input.[0].role"),
    ],
)  # fmt: skip
def test_a_malformed_item_reference_is_a_400(reference, code, param):
    with pytest.raises(ApiError) as refused:
        schemas.validate_responses_request({"model": "m", "input": [reference]}, max_items=10)
    assert (refused.value.code, refused.value.param) == (code, param)


# --- Through the views, with the Ollama stand-in and a store in memory. ---


@pytest.fixture
def keyed(settings, ollama_url):
    """The Flask test client of a gateway with two keys, and a way to post as either."""
    app = create_app(
        dataclasses.replace(settings, ollama_base_url=ollama_url, api_keys=(KEY, OTHER_KEY))
    )
    client = app.test_client()

    def post(body, key=KEY):
        return client.post("/v1/responses", json=body, headers={"Authorization": f"Bearer {key}"})

    return post


def reference(item_id):
    return {"type": "item_reference", "id": item_id}


def chat_messages(ollama):
    return ollama.last_request("/api/chat").body["messages"]


def test_references_to_a_stored_input_and_output_item_send_the_conversation(keyed, ollama):
    first = keyed({"model": "llama3.2", "input": "My name is Ann."}).get_json()
    [message] = first["output"]
    suffix = first["id"].removeprefix("resp_")
    question = {"role": "user", "content": "What is my name?"}
    history = [reference(f"msg_{suffix}00"), reference(message["id"])]
    answer = keyed({"model": "llama3.2", "input": [*history, question]})
    assert answer.status_code == 200, answer.get_json()
    assert chat_messages(ollama) == [
        {"role": "user", "content": "My name is Ann."},
        {"role": "assistant", "content": "Hello! You said: My name is Ann."},
        {"role": "user", "content": "What is my name?"},
    ]


def test_a_reference_without_its_type_is_a_reference(keyed, ollama):
    # The SDK's ItemReference makes "type" optional: an item with an id and no role is one.
    first = keyed({"model": "llama3.2", "input": "My name is Ann."}).get_json()
    question = {"role": "user", "content": "What is my name?"}
    answer = keyed({"model": "llama3.2", "input": [{"id": first["output"][0]["id"]}, question]})
    assert answer.status_code == 200, answer.get_json()
    assert chat_messages(ollama)[0] == {
        "role": "assistant",
        "content": "Hello! You said: My name is Ann.",
    }
    unknown = keyed({"model": "llama3.2", "input": [{"id": "msg_nope"}, question]})
    assert (unknown.status_code, unknown.get_json()["error"]["param"]) == (400, "input.[0].id")


def test_references_to_reasoning_and_a_function_call_make_the_assistant_turn(keyed, ollama):
    ollama.thinking = "The user wants the weather."
    ollama.tool_calls = [{"name": "get_weather", "arguments": {"city": "Oslo"}}]
    body = {"model": "qwen3:8b", "input": "Weather in Oslo?", "tools": [WEATHER]}
    first = keyed({**body, "reasoning": {"effort": "low"}}).get_json()
    reasoning, call = first["output"]
    assert (reasoning["type"], call["type"]) == ("reasoning", "function_call")
    ollama.thinking, ollama.tool_calls = None, None
    result = {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}
    history = [reference(reasoning["id"]), reference(call["id"]), result]
    answer = keyed({**body, "input": [{"role": "user", "content": "Weather in Oslo?"}, *history]})
    assert answer.status_code == 200, answer.get_json()
    _, turn, tool = chat_messages(ollama)
    assert turn["thinking"] == "The user wants the weather."
    assert [c["function"] for c in turn["tool_calls"]] == [
        {"name": "get_weather", "arguments": {"city": "Oslo"}}
    ]
    assert tool == {"role": "tool", "content": "sunny", "tool_name": "get_weather"}


def test_another_keys_item_is_as_unknown(keyed, ollama):
    first = keyed({"model": "llama3.2", "input": "secret"}).get_json()
    item_id = first["output"][0]["id"]
    refused = keyed(
        {"model": "llama3.2", "input": [{"role": "user", "content": "x"}, reference(item_id)]},
        key=OTHER_KEY,
    )
    assert refused.status_code == 400
    error = refused.get_json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "invalid_value",
        "input.[1].id",
    )
    assert error["message"].startswith(f"Item with id '{item_id}' not found")
    assert len([r for r in ollama.requests if r.path == "/api/chat"]) == 1


@pytest.mark.parametrize(
    "item_id",
    [
        f"msg_{HEX}00",  # no such response
        f"msg_{HEX}",  # made before item ids named their response
        "rs_68b802ebea3081948dd9fb2a0737752104fa0ab3d5305dc1",  # made by OpenAI
    ],
)
def test_an_unknown_or_undecodable_item_is_a_400_before_ollama_is_called(keyed, ollama, item_id):
    refused = keyed({"model": "llama3.2", "input": [reference(item_id)]})
    assert refused.status_code == 400
    error = refused.get_json()["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "input.[0].id")
    assert error["message"].startswith(f"Item with id '{item_id}' not found")
    assert ollama.requests == []


def test_an_item_of_a_response_in_the_same_store_but_not_of_its_items(keyed, ollama):
    """The id names a stored response, which holds no item at that index."""
    first = keyed({"model": "llama3.2", "input": "hi"}).get_json()
    missing = f"msg_{first['id'].removeprefix('resp_')}09"
    refused = keyed({"model": "llama3.2", "input": [reference(missing)]})
    assert refused.status_code == 400
    assert refused.get_json()["error"]["param"] == "input.[0].id"
