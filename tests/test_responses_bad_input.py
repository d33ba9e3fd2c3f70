"""Malformed /v1/responses requests against the real stack: each gets the exact 400 (status,
code, param) that names what is wrong, never a 500, and Ollama is never called."""

import pytest
import requests

RESPONSES = "/v1/responses"
DROP = object()
GOOD_CALL = {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}


def body(**changes):
    """A valid responses body with fields changed (DROP removes one)."""
    fields = {"model": "llama3.2", "input": "Hi"}
    fields.update(changes)
    return {name: value for name, value in fields.items() if value is not DROP}


def items(*entries):
    return body(input=list(entries))


def case(request, code, param, case_id):
    return pytest.param(request, code, param, id=case_id)


# fmt: off
CASES = [
    case(body(model=DROP), "missing_required_parameter", "model", "no-model"),
    case(body(input=DROP), "missing_required_parameter", "input", "no-input"),
    case(body(input=42), "invalid_type", "input", "input-number"),
    case(items("hello"), "invalid_type", "input.[0]", "item-string"),
    case(items({"role": "tool", "content": "x"}), "invalid_value", "input.[0].role", "bad-role"),
    case(
        items({"type": "web_search_call", "id": "ws_1"}),
        "unsupported_value",
        "input.[0].type",
        "hosted-item",
    ),
    case(
        items({"type": "item_reference", "id": "msg_1"}),
        "invalid_value",
        "input.[0].id",
        "item-reference-unknown",
    ),
    case(
        items({"type": "function_call", "name": "f", "arguments": "{}"}),
        "missing_required_parameter",
        "input.[0].call_id",
        "call-without-call-id",
    ),
    case(
        items({**GOOD_CALL, "arguments": "[1, 2]"}),
        "invalid_value",
        "input.[0].arguments",
        "arguments-not-an-object",
    ),
    case(
        items({**GOOD_CALL, "arguments": {"a": 1}}),
        "invalid_value",
        "input.[0].arguments",
        "arguments-not-a-string",
    ),
    case(
        items({"type": "function_call_output", "output": "x"}),
        "missing_required_parameter",
        "input.[0].call_id",
        "output-without-call-id",
    ),
    case(
        items({"type": "function_call_output", "call_id": "call_9", "output": "x"}),
        "invalid_value",
        "input.[0].call_id",
        "output-with-no-matching-call",
    ),
    case(
        items(GOOD_CALL, {"type": "function_call_output", "call_id": "call_1", "output": 3}),
        "invalid_type",
        "input.[1].output",
        "output-number",
    ),
    case(
        items({"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}),
        "invalid_value",
        "input.[0].content.[0].type",
        "input-file",
    ),
    case(
        items({"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}),
        "unsupported_parameter",
        "input.[0].content.[0].file_id",
        "image-file-id",
    ),
    case(
        items({"role": "user", "content": "x", "colour": "red"}),
        "unsupported_parameter",
        "input.[0].colour",
        "unknown-message-field",
    ),
    case(
        items({"type": "reasoning", "summary": [{"type": "text", "text": "x"}]}),
        "invalid_value",
        "input.[0].summary.[0]",
        "reasoning-bad-summary",
    ),
    case(body(include=["everything"]), "invalid_value", "include.[0]", "garbage-include"),
    case(
        body(include="reasoning.encrypted_content"), "invalid_type", "include", "include-not-a-list"
    ),
    case(
        body(tools=[{"type": "custom", "name": "patch"}]),
        "unsupported_value",
        "tools.[0].type",
        "custom-tool",
    ),
    case(
        body(tools=[{"type": "function"}]),
        "invalid_type",
        "tools.[0].name",
        "function-without-name",
    ),
    case(
        body(tool_choice={"type": "function", "name": "nope"}),
        "invalid_value",
        "tool_choice.name",
        "tool-choice-unknown-function",
    ),
    case(
        body(tool_choice={"type": "web_search"}),
        "unsupported_value",
        "tool_choice",
        "tool-choice-hosted",
    ),
    case(
        body(text={"format": {"type": "xml"}}),
        "invalid_value",
        "text.format.type",
        "text-format-unknown",
    ),
    case(
        body(text={"format": {"type": "json_schema", "schema": {}}}),
        "invalid_type",
        "text.format.name",
        "json-schema-without-name",
    ),
    case(
        body(reasoning={"effort": "extreme"}), "invalid_value", "reasoning.effort", "bad-effort"
    ),
    case(
        body(reasoning={"summary": "short"}), "invalid_value", "reasoning.summary", "bad-summary"
    ),
    case(body(background=True), "unsupported_parameter", "background", "background"),
    case(body(conversation="conv_1"), "unsupported_parameter", "conversation", "conversation"),
    case(
        body(previous_response_id="not an id"),
        "invalid_value",
        "previous_response_id",
        "previous-id-garbage",
    ),
    case(body(metadata={"k": 1}), "invalid_value", "metadata.k", "metadata-not-strings"),
    case(body(truncation="sometimes"), "invalid_value", "truncation", "bad-truncation"),
    case(body(max_output_tokens=0), "invalid_value", "max_output_tokens", "zero-tokens"),
    case(body(temperature=3), "invalid_value", "temperature", "hot"),
    case(
        body(stream_options={"include_obfuscation": False}),
        "invalid_value",
        "stream_options",
        "stream-options-without-stream",
    ),
    case(body(surprise=True), "unknown_parameter", "surprise", "unknown-field"),
    case(
        body(input=[{"role": "user", "content": "x"}] * 2049),
        "array_above_max_length",
        "input",
        "too-many-items",
    ),
    # Lists where a name goes: looked up in a set of names, they were 500s.
    case(
        body(tool_choice={"type": ["web_search"]}),
        "invalid_value",
        "tool_choice",
        "tool-choice-type-list",
    ),
    case(
        body(tools=[{"type": ["function"]}]),
        "unsupported_value",
        "tools.[0].type",
        "tool-type-list",
    ),
    case(
        items({"type": ["message"], "role": "user"}),
        "invalid_type",
        "input.[0].type",
        "item-type-list",
    ),
    case(
        body(include=[["reasoning.encrypted_content"]]),
        "invalid_value",
        "include.[0]",
        "include-list",
    ),
]


@pytest.mark.parametrize(("request_body", "code", "param"), CASES)
def test_malformed_responses_request_is_a_400_naming_the_param(
    server, ollama, request_body, code, param
):
    answer = requests.post(f"{server.url}{RESPONSES}", json=request_body, timeout=30)
    assert answer.status_code == 400, answer.text[:500]
    error = answer.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        code,
        param,
    )
    assert error["message"]
    assert ollama.requests == []


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/responses/resp_unknown", 404),
        ("DELETE", "/v1/responses/resp_unknown", 404),
        ("GET", "/v1/responses/resp_unknown/input_items", 404),
        ("PUT", "/v1/responses", 405),
    ],
)
def test_unknown_ids_and_methods_get_envelopes(server, ollama, method, path, status):
    answer = requests.request(method, f"{server.url}{path}", timeout=30)
    assert answer.status_code == status
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}


def test_gateway_is_healthy_after_the_battery(server, ollama):
    assert requests.get(f"{server.url}/health", timeout=10).json()["status"] == "healthy"
    answer = requests.post(f"{server.url}{RESPONSES}", json=body(), timeout=10)
    assert answer.status_code == 200
    assert "Traceback" not in server.log()
