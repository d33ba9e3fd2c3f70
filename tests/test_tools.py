"""Tool calling: tools and tool_choice sent to Ollama, tool calls back in OpenAI's shape,
streamed as OpenAI deltas, and conversation history with tool calls and tool results."""

import json

import openai
import pytest
import requests

from ollama_openai import schemas
from ollama_openai.config import Settings
from ollama_openai.errors import ApiError
from ollama_openai.translate import chat as chat_rules
from ollama_openai.translate.options import SamplingDefaults

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
ASK = [{"role": "user", "content": "Weather in Tokyo?"}]
CALL = {
    "id": "call_abc",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Tokyo"}'},
}
HISTORY = [
    *ASK,
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_abc", "content": "sunny, 22 C"},
]


def chat(**fields):
    return {"model": "llama3.2", "messages": ASK, **fields}


# --- Translation rules. ---


@pytest.mark.parametrize(
    ("tool_choice", "offered"),
    [
        (None, ["get_weather", "get_time"]),
        ("auto", ["get_weather", "get_time"]),
        # Ollama cannot force a call: "required" offers every tool, as "auto" does.
        ("required", ["get_weather", "get_time"]),
        ({"type": "function", "function": {"name": "get_time"}}, ["get_time"]),
        ("none", None),
    ],
)
def test_tool_choice_decides_which_tools_ollama_sees(tool_choice, offered):
    body = chat(tools=[WEATHER, TIME], tool_choice=tool_choice)
    payload = chat_rules.chat_request_to_ollama(body, SamplingDefaults())
    names = [tool["function"]["name"] for tool in payload["tools"]] if "tools" in payload else None
    assert names == offered


def test_history_tool_calls_and_results_translate_to_ollama():
    payload = chat_rules.chat_request_to_ollama(chat(messages=HISTORY), SamplingDefaults())
    assert payload["messages"][1:] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_abc",
                    "function": {"name": "get_weather", "arguments": {"city": "Tokyo"}},
                }
            ],
        },
        {"role": "tool", "content": "sunny, 22 C", "tool_name": "get_weather"},
    ]


def ollama_answer(*calls, content=""):
    message = {"role": "assistant", "content": content, "tool_calls": list(calls)}
    return {"message": message, "done": True, "done_reason": "stop", "eval_count": 3}


def validate(body):
    """Validate a chat body with a default gateway's limits."""
    settings = Settings()
    return schemas.validate_chat_request(
        body, max_messages=settings.max_messages, max_n=settings.max_n
    )


def answer_to(body, ollama_answer):
    """The chat answer the gateway makes of one non-streamed Ollama answer to ``body``."""
    return chat_rules.plan(body, SamplingDefaults(), "m").answer([ollama_answer])


RECENT_CALL = {"id": "call_x1", "function": {"index": 0, "name": "f", "arguments": {"a": 1}}}
OLD_CALL = {"function": {"name": "g", "arguments": {}}}  # older servers: no id, no index


def test_tool_calls_come_back_in_openai_shape():
    answer = answer_to(chat(tools=[WEATHER]), ollama_answer(RECENT_CALL, OLD_CALL))
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    first, second = choice["message"]["tool_calls"]
    assert first == {
        "id": "call_x1",
        "type": "function",
        "function": {"name": "f", "arguments": '{"a": 1}'},
    }
    assert second["id"].startswith("call_") and len(second["id"]) > 10
    assert second["function"] == {"name": "g", "arguments": "{}"}


def test_parallel_tool_calls_false_keeps_the_first_call():
    body = chat(tools=[WEATHER], parallel_tool_calls=False)
    answer = answer_to(body, ollama_answer(RECENT_CALL, OLD_CALL))
    assert [c["id"] for c in answer["choices"][0]["message"]["tool_calls"]] == ["call_x1"]


def test_streamed_tool_calls_count_their_index_across_lines():
    stream = chat_rules.plan(chat(stream=True), SamplingDefaults(), "m").translator()
    stream.start()
    [(_, first)] = stream.piece({"message": {"content": "", "tool_calls": [RECENT_CALL]}})
    [(_, second)] = stream.piece({"message": {"content": "", "tool_calls": [OLD_CALL]}})
    [(_, finish)] = stream.finish({"done": True, "done_reason": "stop"})
    deltas = [first["choices"][0]["delta"], second["choices"][0]["delta"]]
    assert deltas[0]["tool_calls"] == [
        {
            "index": 0,
            "id": "call_x1",
            "type": "function",
            "function": {"name": "f", "arguments": '{"a": 1}'},
        }
    ]
    assert deltas[1]["tool_calls"][0]["index"] == 1
    assert deltas[1]["tool_calls"][0]["id"].startswith("call_")
    assert finish["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (chat(tools={"get_weather": {}}), "tools"),
        (chat(tools=[{"type": "function", "function": {}}]), "tools.[0].function.name"),
        (chat(tools=[{"type": "function"}]), "tools.[0].function"),
        (chat(tools=[WEATHER], tool_choice="always"), "tool_choice"),
        (chat(tool_choice="required"), "tool_choice"),
        (
            chat(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "x"}}),
            "tool_choice.function.name",
        ),
        (chat(tools=[WEATHER], parallel_tool_calls="yes"), "parallel_tool_calls"),
        (
            chat(
                messages=[
                    {"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "f"}}]}
                ]
            ),
            "messages.[0].tool_calls.[0].function.arguments",
        ),
        (
            chat(
                messages=[
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {**CALL, "function": {"name": "f", "arguments": "{city: Tokyo"}}
                        ],
                    }
                ]
            ),
            "messages.[0].tool_calls.[0].function.arguments",
        ),
        (
            chat(
                messages=[
                    {
                        "role": "assistant",
                        "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "[1]"}}],
                    }
                ]
            ),
            "messages.[0].tool_calls.[0].function.arguments",
        ),
        (chat(messages=[{"role": "tool", "content": "x"}]), "messages.[0].tool_call_id"),
        (
            chat(messages=[*ASK, {"role": "tool", "tool_call_id": "call_nope", "content": "x"}]),
            "messages.[1].tool_call_id",
        ),
        (
            chat(messages=[{"role": "user", "content": "x", "tool_calls": []}]),
            "messages.[0].tool_calls",
        ),
    ],
)
def test_bad_tool_requests_are_400_naming_the_param(body, param):
    with pytest.raises(ApiError) as caught:
        validate(body)
    assert (caught.value.status, caught.value.param) == (400, param)


def test_history_as_the_sdk_sends_it_back_is_valid():
    # An answer's message appended to the history keeps its null and empty fields.
    echoed = {
        **HISTORY[1],
        "refusal": None,
        "annotations": [],
        "audio": None,
        "function_call": None,
    }
    body = chat(messages=[ASK[0], echoed, HISTORY[2]], tools=[WEATHER], parallel_tool_calls=True)
    assert validate(body) is body


# --- Through the official SDK, against the stand-in. ---


def test_tool_round_trip_call_result_answer(openai_client, ollama):
    ollama.tool_calls = [{"name": "get_weather", "arguments": {"city": "Tokyo"}}]
    first = openai_client.chat.completions.create(model="llama3.2", messages=ASK, tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Tokyo"}
    sent = ollama.last_request("/api/chat").body
    assert sent["tools"] == [WEATHER]

    history = [*ASK, choice.message, {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    final = openai_client.chat.completions.create(
        model="llama3.2", messages=history, tools=[WEATHER]
    )
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "From the tools: get_weather says sunny"
    sent = ollama.last_request("/api/chat").body
    assert sent["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"city": "Tokyo"}
    assert sent["messages"][2] == {"role": "tool", "content": "sunny", "tool_name": "get_weather"}


def test_streamed_tool_calls_assemble_with_the_sdk_stream_helper(openai_client, ollama):
    ollama.tool_calls = [
        {"name": "get_weather", "arguments": {"city": "Tokyo"}},
        {"name": "get_weather", "arguments": {"city": "Paris"}},
    ]
    strict = {**WEATHER, "function": {**WEATHER["function"], "strict": True}}
    with openai_client.chat.completions.stream(
        model="llama3.2", messages=ASK, tools=[strict]
    ) as stream:
        done_events = [e for e in stream if e.type == "tool_calls.function.arguments.done"]
        completion = stream.get_final_completion()
    assert [(e.index, e.parsed_arguments) for e in done_events] == [
        (0, {"city": "Tokyo"}),
        (1, {"city": "Paris"}),
    ]
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [c.function.parsed_arguments for c in calls] == [{"city": "Tokyo"}, {"city": "Paris"}]
    assert len({c.id for c in calls}) == 2


def test_streamed_tool_call_deltas_have_openai_shape(server, ollama):
    ollama.tool_calls = [{"name": "get_weather", "arguments": {"city": "Tokyo"}}]
    body = {"model": "llama3.2", "messages": ASK, "tools": [WEATHER], "stream": True}
    response = requests.post(f"{server.url}/v1/chat/completions", json=body, timeout=10)
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    with_calls = [c for c in chunks if c["choices"][0]["delta"].get("tool_calls")]
    (chunk,) = with_calls
    (delta_call,) = chunk["choices"][0]["delta"]["tool_calls"]
    assert set(delta_call) == {"index", "id", "type", "function"}
    assert delta_call["index"] == 0
    assert delta_call["function"] == {"name": "get_weather", "arguments": '{"city": "Tokyo"}'}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_calls_without_ids_from_older_servers_get_ids_and_indexes(server, ollama):
    ollama.tool_calls = [
        {"name": "get_weather", "arguments": {"city": "Tokyo"}},
        {"name": "get_weather", "arguments": {"city": "Paris"}},
    ]
    ollama.tool_calls_without_ids = True
    body = {"model": "llama3.2", "messages": ASK, "tools": [WEATHER], "stream": True}
    response = requests.post(f"{server.url}/v1/chat/completions", json=body, timeout=10)
    chunks = [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")
    ]
    calls = [
        call for chunk in chunks for call in chunk["choices"][0]["delta"].get("tool_calls") or []
    ]
    assert [call["index"] for call in calls] == [0, 1]
    assert all(call["id"].startswith("call_") for call in calls)
    assert len({call["id"] for call in calls}) == 2


def test_tool_choice_none_sends_no_tools(openai_client, ollama):
    ollama.tool_calls = [{"name": "get_weather", "arguments": {"city": "Tokyo"}}]
    answer = openai_client.chat.completions.create(
        model="llama3.2", messages=ASK, tools=[WEATHER], tool_choice="none"
    )
    assert "tools" not in ollama.last_request("/api/chat").body
    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].finish_reason == "stop"


def test_named_tool_choice_sends_only_that_tool(openai_client, ollama):
    openai_client.chat.completions.create(
        model="llama3.2",
        messages=ASK,
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert ollama.last_request("/api/chat").body["tools"] == [TIME]


def test_invalid_arguments_in_history_are_a_400(openai_client, ollama):
    broken = {**CALL, "function": {"name": "get_weather", "arguments": "{not json"}}
    messages = [*ASK, {"role": "assistant", "tool_calls": [broken]}, HISTORY[2]]
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(model="llama3.2", messages=messages)
    assert caught.value.body["param"] == "messages.[1].tool_calls.[0].function.arguments"
    assert ollama.requests == []


def test_model_without_tool_support_is_a_400_naming_tools(openai_client, ollama):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(
            model="hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", messages=ASK, tools=[WEATHER]
        )
    assert "does not support tools" in caught.value.body["message"]
    assert caught.value.body["param"] == "tools"
    assert ollama.last_request("/api/chat") is None
