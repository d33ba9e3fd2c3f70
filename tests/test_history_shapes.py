"""Histories as client libraries send them back after a tool round trip: the SDK's own message
objects, LangChain's, LiteLLM's, the OpenAI cookbook's. Each is valid, and each tool result
reaches Ollama named by the tool whose call it answers."""

import json

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_openai.chat_models.base import _convert_message_to_dict
from openai.types.chat import ChatCompletionMessage

from ollama_openai import schemas
from ollama_openai.translate import chat as chat_rules
from ollama_openai.translate.options import SamplingDefaults

ASK = [{"role": "user", "content": "Weather and time in Tokyo?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    for name in ("get_weather", "get_time")
]
# What the model calls (two calls in one answer, as in LiteLLM's and the cookbook's examples)
# and what each tool returns.
CALLS = [
    {"name": "get_weather", "arguments": {"city": "Tokyo"}},
    {"name": "get_time", "arguments": {"city": "Tokyo"}},
]
RESULTS = {"get_weather": "sunny", "get_time": "noon"}
FINAL_REPLY = "From the tools: get_weather says sunny; get_time says noon"


def tool_results(message, **extra):
    """One tool message per call, as most clients write it; ``extra`` adds fields."""
    return [
        {"role": "tool", "tool_call_id": call.id, "content": RESULTS[call.function.name], **extra}
        for call in message.tool_calls
    ]


def sdk_object(message):
    """The SDK's own ChatCompletionMessage, appended as it came (the SDK serializes it)."""
    return [message, *tool_results(message)]


def sdk_model_dump(message):
    """``message.model_dump()``: every field, null ones included (refusal, audio, ...)."""
    return [message.model_dump(), *tool_results(message)]


def cookbook(message):
    """The OpenAI cookbook (How_to_call_functions_with_chat_models): the answer's message
    object, then tool results with ``name``."""
    return [
        message,
        *(
            {
                "role": "tool",
                "tool_call_id": call.id,
                "name": call.function.name,
                "content": RESULTS[call.function.name],
            }
            for call in message.tool_calls
        ),
    ]


def langchain(message, tool_content=lambda text: text):
    """What langchain-openai sends for an AIMessage with tool calls and ToolMessages."""
    calls = [
        {"name": c.function.name, "args": json.loads(c.function.arguments), "id": c.id}
        for c in message.tool_calls
    ]
    history = [AIMessage(content="", tool_calls=calls)]
    history += [
        ToolMessage(tool_content(RESULTS[c["name"]]), tool_call_id=c["id"], name=c["name"])
        for c in calls
    ]
    return [_convert_message_to_dict(m) for m in history]


def langchain_text_blocks(message):
    """LangChain ToolMessages whose content is a list of text blocks."""
    return langchain(message, tool_content=lambda text: [{"type": "text", "text": text}])


def litellm(message):
    """LiteLLM's shape (it is not installed here). Its Message (litellm/types/utils.py) drops
    ``audio``, ``annotations`` and ``reasoning_content`` when they are null but keeps
    ``function_call: None``; the tool results of its docs carry ``name``
    (docs/my-website/docs/completion/function_call.md, "Parallel function calling")."""
    assistant = {
        "content": message.content,
        "role": "assistant",
        "tool_calls": [
            {
                "function": {"arguments": c.function.arguments, "name": c.function.name},
                "id": c.id,
                "type": "function",
            }
            for c in message.tool_calls
        ],
        "function_call": None,
    }
    results = [
        {
            "tool_call_id": c.id,
            "role": "tool",
            "name": c.function.name,
            "content": RESULTS[c.function.name],
        }
        for c in message.tool_calls
    ]
    return [assistant, *results]


def content_null(message):
    """A hand-written history: ``content: null`` beside the tool calls, nothing else."""
    calls = [c.model_dump(mode="json") for c in message.tool_calls]
    return [{"role": "assistant", "content": None, "tool_calls": calls}, *tool_results(message)]


def text_parts(message):
    """Tool results whose content is a list of ``text`` parts, as the SDK's types allow."""
    return [
        message.model_dump(exclude_none=True),
        *(
            {**result, "content": [{"type": "text", "text": result["content"]}]}
            for result in tool_results(message)
        ),
    ]


SHAPES = {
    shape.__name__: shape
    for shape in (
        sdk_object,
        sdk_model_dump,
        cookbook,
        langchain,
        langchain_text_blocks,
        litellm,
        content_null,
        text_parts,
    )
}


def expected_tail(message):
    """What Ollama must receive after the user's question, whatever the shape: the calls with
    their arguments as objects, each result named by its tool, no OpenAI-only fields."""
    calls = [
        {
            "id": c.id,
            "function": {"name": c.function.name, "arguments": json.loads(c.function.arguments)},
        }
        for c in message.tool_calls
    ]
    results = [
        {"role": "tool", "content": RESULTS[c.function.name], "tool_name": c.function.name}
        for c in message.tool_calls
    ]
    return [{"role": "assistant", "content": "", "tool_calls": calls}, *results]


def as_sent(history):
    """The JSON the SDK sends for a history: model objects as their set fields
    (openai/_utils/_transform.py dumps them with ``exclude_unset=True``)."""
    return json.loads(
        json.dumps(history, default=lambda m: m.model_dump(exclude_unset=True, mode="json"))
    )


# --- Unit: validation accepts each shape and the Ollama payload is right. ---


def answered_message():
    """The SDK's ChatCompletionMessage for the gateway's own answer to an Ollama tool call."""
    ollama_answer = {
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": f"call_{i}", "function": {"index": i, **call}}
                for i, call in enumerate(CALLS)
            ],
        },
        "done": True,
        "done_reason": "stop",
    }
    answer = chat_rules.ChatChoice(0).whole(ollama_answer)
    return ChatCompletionMessage.model_validate(answer["message"])


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_each_shape_is_valid_and_reaches_ollama_named_by_tool(shape):
    message = answered_message()
    body = {"model": "llama3.2", "messages": as_sent([*ASK, *shape(message)]), "tools": TOOLS}
    assert schemas.validate_chat_request(body, max_messages=100, max_n=1) is body
    payload = chat_rules.chat_request_to_ollama(body, SamplingDefaults())
    assert payload["messages"] == [*ASK, *expected_tail(message)]


# --- End to end: the official SDK, the gateway under gunicorn, the stand-in. ---


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_round_trip_through_the_sdk_in_each_shape(openai_client, ollama, shape):
    ollama.tool_calls = CALLS
    first = openai_client.chat.completions.create(model="llama3.2", messages=ASK, tools=TOOLS)
    assert first.choices[0].finish_reason == "tool_calls"
    message = first.choices[0].message

    final = openai_client.chat.completions.create(
        model="llama3.2", messages=[*ASK, *shape(message)], tools=TOOLS
    )
    assert final.choices[0].message.content == FINAL_REPLY
    assert ollama.last_request("/api/chat").body["messages"] == [*ASK, *expected_tail(message)]


def test_the_stream_helpers_final_message_goes_back_as_it_is(openai_client, ollama):
    """``stream.get_final_completion()`` builds a ParsedChatCompletionMessage: its tool calls
    also carry ``index`` and ``function.parsed_arguments``, the message ``parsed``."""
    ollama.tool_calls = CALLS
    with openai_client.chat.completions.stream(
        model="llama3.2", messages=ASK, tools=TOOLS
    ) as stream:
        message = stream.get_final_completion().choices[0].message

    final = openai_client.chat.completions.create(
        model="llama3.2", messages=[*ASK, message, *tool_results(message)], tools=TOOLS
    )
    assert final.choices[0].message.content == FINAL_REPLY
    assert ollama.last_request("/api/chat").body["messages"] == [*ASK, *expected_tail(message)]
