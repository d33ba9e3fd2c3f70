"""The Vercel AI SDK (``ai`` and ``@ai-sdk/openai`` from npm, pinned in tests/js, run with node)
against the gateway: ``openai(model)`` speaks the Responses API, ``openai.chat(model)`` Chat
Completions. Each test runs one scenario of tests/js/ai_sdk_check.mjs, which also reports the
request bodies the SDK sent.

``make test`` installs the SDK first (``npm ci`` in tests/js). Missing node or modules fail the
test rather than skip it, as for the other npm clients.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"
REPLY = "Hello! You said: Say hello"
TOOL_REPLY = "From the tools: get_weather says sunny in Tokyo"


def run_ai_sdk(server, scenario):
    """The scenario's JSON report: ``result`` (or the SDK's ``error``) and ``sent``."""
    node = shutil.which("node")
    assert node, "node is not installed; the AI SDK test needs node"
    assert (JS_DIR / "node_modules" / "@ai-sdk" / "openai").is_dir(), (
        "the AI SDK is not installed: run `make test` (or `npm ci` in tests/js)"
    )
    finished = subprocess.run(
        [node, "ai_sdk_check.mjs", f"{server.url}/v1", scenario],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stderr
    return json.loads(finished.stdout)


def chats(ollama):
    return [r.body for r in ollama.requests if r.path == "/api/chat"]


@pytest.mark.parametrize(
    ("scenario", "path"),
    [
        ("responses-generate", "/v1/responses"),
        ("responses-stream", "/v1/responses"),
        ("chat-generate", "/v1/chat/completions"),
        ("chat-stream", "/v1/chat/completions"),
    ],
)
def test_ai_sdk_text_comes_back_with_usage(server, ollama, scenario, path):
    report = run_ai_sdk(server, scenario)
    result = report["result"]
    assert result["text"] == REPLY
    usage = result["usage"]
    assert usage["inputTokens"] > 0 and usage["outputTokens"] > 0
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    [request] = report["sent"]
    assert request["path"] == path and request["status"] == 200
    [chat] = chats(ollama)
    assert chat["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Say hello"},
    ]
    assert chat["stream"] is scenario.endswith("-stream")


def test_ai_sdk_sends_the_responses_api_its_own_shapes(server, ollama):
    """What ``openai(model)`` sends: instructions as a system item, the prompt as input_text
    parts, no ``store`` (the gateway's default, true, keeps the response)."""
    report = run_ai_sdk(server, "responses-generate")
    [request] = report["sent"]
    assert request["body"] == {
        "model": "llama3.2",
        "input": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": [{"type": "input_text", "text": "Say hello"}]},
        ],
    }
    assert report["result"]["responseId"].startswith("resp_")


@pytest.mark.parametrize("scenario", ["responses-tools", "responses-tools-stream", "chat-tools"])
def test_ai_sdk_runs_a_tool_and_sends_its_result_back(server, ollama, scenario):
    ollama.tool_calls = [{"name": "get_weather", "arguments": {"city": "Tokyo"}}]
    report = run_ai_sdk(server, scenario)
    assert report["result"]["text"] == TOOL_REPLY
    assert report["result"]["steps"] == 2
    first, second = chats(ollama)
    assert [tool["function"]["name"] for tool in first["tools"]] == ["get_weather"]
    assert first["tools"][0]["function"]["parameters"]["properties"] == {"city": {"type": "string"}}
    call, result = second["messages"][-2:]
    assert call["role"] == "assistant"
    assert [c["function"] for c in call["tool_calls"]] == [
        {"name": "get_weather", "arguments": {"city": "Tokyo"}}
    ]
    assert result == {"role": "tool", "content": "sunny in Tokyo", "tool_name": "get_weather"}
    if scenario.startswith("responses"):
        sent_items = report["sent"][1]["body"]["input"]
        assert [item.get("type") for item in sent_items[-2:]] == [
            "function_call",
            "function_call_output",
        ]


def test_ai_sdk_unknown_model_is_an_api_call_error_404(server, ollama):
    report = run_ai_sdk(server, "unknown-model")
    error = report["error"]
    assert error["name"] == "AI_APICallError"
    assert error["statusCode"] == 404
    assert error["message"] == (
        "The model 'no-such-model' does not exist in Ollama. "
        "Pull it first: `ollama pull no-such-model`."
    )
    assert error["isRetryable"] is False


def test_ai_sdk_continues_a_stored_response_by_previous_response_id(server, ollama):
    report = run_ai_sdk(server, "previous-response")
    first, second = report["sent"]
    assert "store" not in first["body"]
    assert second["body"]["previous_response_id"] == report["result"]["first"]["responseId"]
    assert second["status"] == 200
    assert chats(ollama)[1]["messages"] == [
        {"role": "user", "content": "My name is Ann."},
        {"role": "assistant", "content": "Hello! You said: My name is Ann."},
        {"role": "user", "content": "What is my name?"},
    ]


def test_ai_sdk_history_without_store_is_sent_whole(server, ollama):
    """With ``store: false`` the SDK sends its earlier answers as messages."""
    report = run_ai_sdk(server, "history")
    first, second = report["sent"]
    assert first["body"]["store"] is False
    assert second["body"]["input"][1] == {
        "role": "assistant",
        "content": "Hello! You said: My name is Ann.",
    }
    assert report["result"]["second"]["text"] == "Hello! You said: What is my name?"
    assert chats(ollama)[1]["messages"][1] == {
        "role": "assistant",
        "content": "Hello! You said: My name is Ann.",
    }


def test_ai_sdk_history_with_store_refers_to_the_stored_answer(server, ollama):
    """With store on, its default, the SDK sends its earlier answer as an ``item_reference`` to
    the stored item; the gateway puts the stored answer in its place."""
    report = run_ai_sdk(server, "history-stored")
    first, second = report["sent"]
    assert first["status"] == 200 and second["status"] == 200
    reference = second["body"]["input"][1]
    assert reference == {"type": "item_reference", "id": reference["id"]}
    assert reference["id"].startswith("msg_")
    assert report["result"]["second"]["text"] == "Hello! You said: What is my name?"
    assert chats(ollama)[1]["messages"] == [
        {"role": "user", "content": "My name is Ann."},
        {"role": "assistant", "content": "Hello! You said: My name is Ann."},
        {"role": "user", "content": "What is my name?"},
    ]
