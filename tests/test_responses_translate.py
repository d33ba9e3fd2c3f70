"""The Responses API's translation rules: items -> chat messages, tool names, reasoning carried
in encrypted_content, and streamed events that add up to the same response as a whole answer."""

import pytest

from ollama_openai.translate import responses
from ollama_openai.translate.options import SamplingDefaults
from ollama_openai.translate.responses_input import (
    decrypt_reasoning,
    encrypt_reasoning,
    items_to_messages,
    tools_to_chat,
)

FUNCTION = {"type": "function", "name": "run", "parameters": {"type": "object"}}
OK = {"type": "output_text", "text": "Ok"}
RUN = {"name": "run", "arguments": '{"x": 1}'}


def plan(**fields):
    body = {"model": "m", "input": "hi", **fields}
    return responses.plan(body, [], SamplingDefaults(), "m")


def test_an_assistant_turn_becomes_one_message_with_thinking_and_calls():
    _, names = tools_to_chat([FUNCTION])
    items = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]},
        {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "so"}]},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Running."}],
        },
        {"type": "function_call", "call_id": "c1", "name": "run", "arguments": '{"x": 1}'},
        {"type": "function_call_output", "call_id": "c1", "output": "done"},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "then"}]},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Ok"}],
        },
    ]
    assert items_to_messages(items, names) == [
        {"role": "user", "content": [{"type": "text", "text": "go"}]},
        {
            "role": "assistant",
            "content": "Running.",
            "reasoning_content": "so",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "run", "arguments": '{"x": 1}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
        {"role": "assistant", "content": "Ok", "reasoning_content": "then", "tool_calls": []},
    ]


def test_a_namespace_function_that_shares_a_name_is_offered_qualified():
    namespace = {"type": "namespace", "name": "ns", "description": "", "tools": [FUNCTION]}
    tools, names = tools_to_chat([FUNCTION, namespace, {"type": "web_search"}])
    assert [tool["function"]["name"] for tool in tools] == ["run", "ns.run"]
    assert names.call_fields("run") == {"name": "run"}
    assert names.call_fields("ns.run") == {"name": "run", "namespace": "ns"}
    assert names.model_name("ns", "run") == "ns.run"


def test_reasoning_travels_in_encrypted_content_and_only_ours_is_read():
    assert decrypt_reasoning(encrypt_reasoning("Two and two.")) == "Two and two."
    assert decrypt_reasoning("gAAAAABo-openai-own-ciphertext") is None
    assert decrypt_reasoning("ollama-openai:v1:!!not base64!!") is None


def events_to_response(events):
    """What a client keeps of a stream: the items of output_item.done, in order."""
    return [data["item"] for kind, data in events if kind == "response.output_item.done"]


def without_ids(items):
    return [{k: v for k, v in item.items() if k != "id"} for item in items]


LINES = [
    {"message": {"thinking": "Let me see."}},
    {"message": {"thinking": " Fine."}},
    {"message": {"content": "Calling."}},
    {"message": {"tool_calls": [{"id": "call_1", "function": {"name": "run", "arguments": {}}}]}},
]


@pytest.mark.parametrize("done_reason", ["stop", "length"])
@pytest.mark.parametrize("summary", [None, "auto"])
def test_streamed_events_and_a_whole_answer_make_the_same_response(done_reason, summary):
    the_plan = plan(tools=[FUNCTION], reasoning={"summary": summary} if summary else None)
    done = {
        "message": {"content": ""},
        "done": True,
        "done_reason": done_reason,
        "prompt_eval_count": 5,
        "eval_count": 4,
    }
    stream = the_plan.translator()
    events = stream.start()
    for line in LINES:
        events += stream.piece(line)
    events += stream.finish(done) + stream.end({})
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    whole = {
        **done,
        "message": {
            "content": "Calling.",
            "thinking": "Let me see. Fine.",
            "tool_calls": LINES[-1]["message"]["tool_calls"],
        },
    }
    answer = the_plan.answer([whole])
    streamed = events_to_response(events)
    assert without_ids(streamed) == without_ids(answer["output"])
    assert without_ids(stream.response["output"]) == without_ids(answer["output"])
    assert stream.response["status"] == answer["status"]
    assert answer["usage"]["total_tokens"] == 9
    # The tool call closes the message, so only the last item could be cut.
    assert [item["status"] for item in answer["output"]] == ["completed"] * 3


def test_a_cut_message_makes_an_incomplete_response_and_item():
    answer = plan().answer(
        [{"message": {"content": "Once upon"}, "done": True, "done_reason": "length"}]
    )
    assert answer["status"] == "incomplete"
    assert answer["incomplete_details"] == {"reason": "max_output_tokens"}
    assert answer["output"][0]["status"] == "incomplete"
