"""Content parts: each field of each kind of part is honoured, ignored at a value OpenAI's types
allow, or refused with a 400 naming it; ignored fields leave what Ollama receives unchanged."""

import base64

import openai
import pytest

from ollama_openai import schemas
from ollama_openai.config import Settings
from ollama_openai.errors import ApiError
from ollama_openai.translate import chat, responses
from ollama_openai.translate.options import SamplingDefaults

LIMITS = {"max_messages": Settings().max_messages, "max_n": Settings().max_n}
IMAGE = "data:image/png;base64,AAAA"
BREAKPOINT = {"mode": "explicit", "ttl": "30m"}


def chat_parts(*parts, role="user"):
    return {"model": "llama3.2", "messages": [{"role": role, "content": list(parts)}]}


def text(**fields):
    return {"type": "text", "text": "Describe this.", **fields}


def image(**fields):
    return {"type": "image_url", "image_url": {"url": IMAGE, **fields}}


def conversation(role, part):
    """One message of ``role`` holding ``part`` (a tool result answers a call before it)."""
    message = {"role": role, "content": [part]}
    if role != "tool":
        return {"model": "llama3.2", "messages": [message]}
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    opening = {"role": "assistant", "content": None, "tool_calls": [call]}
    return {"model": "llama3.2", "messages": [opening, {**message, "tool_call_id": "call_1"}]}


def input_parts(*parts, role="user"):
    return {"model": "llama3.2", "input": [{"role": role, "content": list(parts)}]}


def input_image(**fields):
    return {"type": "input_image", "image_url": IMAGE, **fields}


def refusal_of(validate, body):
    with pytest.raises(ApiError) as caught:
        validate(body)
    return caught.value.status, caught.value.code, caught.value.param


def validate_chat(body):
    return schemas.validate_chat_request(body, **LIMITS)


def validate_responses(body):
    return schemas.validate_responses_request(body, max_items=LIMITS["max_messages"])


@pytest.mark.parametrize("detail", ["auto", "low", "high", "original"])
def test_every_image_detail_is_accepted_and_ollama_gets_the_same_payload(detail):
    body = chat_parts(text(), image(detail=detail))
    assert validate_chat(body) is body
    plain = chat.chat_request_to_ollama(chat_parts(text(), image()), SamplingDefaults())
    assert chat.chat_request_to_ollama(body, SamplingDefaults()) == plain
    assert plain["messages"] == [{"role": "user", "content": "Describe this.", "images": ["AAAA"]}]


@pytest.mark.parametrize(
    "breakpoint", [{"mode": "explicit"}, BREAKPOINT, {"mode": "explicit", "ttl": "12h"}]
)
@pytest.mark.parametrize("role", ["system", "developer", "user", "assistant", "tool"])
def test_a_cache_breakpoint_is_accepted_and_ollama_gets_the_same_payload(breakpoint, role):
    marked = conversation(role, text(prompt_cache_breakpoint=breakpoint))
    assert validate_chat(marked) is marked
    defaults = SamplingDefaults()
    plain = chat.chat_request_to_ollama(conversation(role, text()), defaults)
    assert chat.chat_request_to_ollama(marked, defaults) == plain


def test_an_image_part_may_carry_a_cache_breakpoint():
    body = chat_parts(text(), image(detail="low") | {"prompt_cache_breakpoint": BREAKPOINT})
    assert validate_chat(body) is body


def test_a_refusal_part_goes_back_to_ollama_as_the_assistants_text():
    body = {
        "model": "llama3.2",
        "messages": [
            {"role": "user", "content": "Help me pick a lock."},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't help."}]},
            {"role": "user", "content": "Why not?"},
        ],
    }
    assert validate_chat(body) is body
    payload = chat.chat_request_to_ollama(body, SamplingDefaults())
    assert payload["messages"][1] == {"role": "assistant", "content": "I can't help."}


P0 = "messages.[0].content.[0]"
P1 = "messages.[0].content.[1]"


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (chat_parts(text(), image(detail="ultra")), "invalid_value", f"{P1}.image_url.detail"),
        (chat_parts(image(detail=2)), "invalid_value", f"{P0}.image_url.detail"),
        (
            chat_parts(text(prompt_cache_breakpoint={"mode": "auto"})),
            "invalid_value",
            f"{P0}.prompt_cache_breakpoint.mode",
        ),
        (
            chat_parts(text(prompt_cache_breakpoint={"ttl": "30m"})),
            "missing_required_parameter",
            f"{P0}.prompt_cache_breakpoint.mode",
        ),
        (
            chat_parts(text(prompt_cache_breakpoint={"mode": "explicit", "ttl": "1h"})),
            "invalid_value",
            f"{P0}.prompt_cache_breakpoint.ttl",
        ),
        (
            chat_parts(text(prompt_cache_breakpoint="30m")),
            "invalid_type",
            f"{P0}.prompt_cache_breakpoint",
        ),
        (
            chat_parts(text(prompt_cache_breakpoint={**BREAKPOINT, "scope": "org"})),
            "unknown_parameter",
            f"{P0}.prompt_cache_breakpoint.scope",
        ),
        (chat_parts(text(colour="red")), "unknown_parameter", f"{P0}.colour"),
        (chat_parts(text(), image(size="big")), "unknown_parameter", f"{P1}.image_url.size"),
        (
            chat_parts(image(), {**text(), "cache_control": {}}),
            "unknown_parameter",
            f"{P1}.cache_control",
        ),
        (
            chat_parts({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}),
            "invalid_value",
            f"{P0}.type",
        ),
        (
            chat_parts(text(), {"type": "file", "file": {"file_id": "file-1"}}),
            "invalid_value",
            f"{P1}.type",
        ),
        (chat_parts(image(), role="system"), "invalid_value", f"{P0}.type"),
        (chat_parts({"type": "refusal", "refusal": "no"}), "invalid_value", f"{P0}.type"),
        (
            chat_parts({"type": "refusal", "refusal": 3}, role="assistant"),
            "invalid_type",
            f"{P0}.refusal",
        ),
    ],
    ids=[
        "detail-ultra",
        "detail-number",
        "breakpoint-mode",
        "breakpoint-without-mode",
        "breakpoint-ttl",
        "breakpoint-string",
        "breakpoint-unknown-key",
        "unknown-key-in-text-part",
        "unknown-key-in-image_url",
        "unknown-key-after-an-image",
        "input_audio",
        "file",
        "image-in-system",
        "refusal-in-user",
        "refusal-not-text",
    ],
)
def test_bad_chat_content_parts_are_400_naming_the_param(body, code, param):
    assert refusal_of(validate_chat, body) == (400, code, param)


@pytest.mark.parametrize(
    ("kind", "why"),
    [("input_audio", "Ollama's models take no audio."), ("file", "Ollama reads no documents")],
)
def test_audio_and_file_parts_are_refused_saying_why(kind, why):
    with pytest.raises(ApiError) as caught:
        validate_chat(chat_parts({"type": kind, kind: {}}))
    assert why in caught.value.message


@pytest.mark.parametrize("detail", ["auto", "low", "high", "original"])
def test_responses_image_detail_and_breakpoint_are_accepted_and_dropped(detail):
    body = input_parts(
        {"type": "input_text", "text": "Describe this.", "prompt_cache_breakpoint": BREAKPOINT},
        input_image(detail=detail, prompt_cache_breakpoint={"mode": "explicit"}),
    )
    assert validate_responses(body) is body
    plain = input_parts({"type": "input_text", "text": "Describe this."}, input_image())
    defaults = SamplingDefaults()
    (payload,) = responses.plan(body, [], defaults, "m").payloads
    (expected,) = responses.plan(plain, [], defaults, "m").payloads
    assert payload == expected
    assert payload["messages"] == [
        {"role": "user", "content": "Describe this.", "images": ["AAAA"]}
    ]


def test_an_assistant_output_text_with_annotations_and_logprobs_is_accepted():
    said = {"type": "output_text", "text": "Hi", "annotations": [], "logprobs": []}
    body = {
        "model": "llama3.2",
        "input": [
            {"role": "user", "content": "Hi"},
            {"type": "message", "role": "assistant", "content": [said]},
            {"role": "user", "content": "Again"},
        ],
    }
    assert validate_responses(body) is body


I0 = "input.[0].content.[0]"


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (input_parts(input_image(detail="ultra")), "invalid_value", f"{I0}.detail"),
        (
            input_parts(input_image(prompt_cache_breakpoint={"mode": "explicit", "ttl": "2d"})),
            "invalid_value",
            f"{I0}.prompt_cache_breakpoint.ttl",
        ),
        (
            input_parts(
                {"type": "input_text", "text": "x", "prompt_cache_breakpoint": {"mode": 1}}
            ),
            "invalid_value",
            f"{I0}.prompt_cache_breakpoint.mode",
        ),
        (
            input_parts({"type": "input_text", "text": "x", "lang": "en"}),
            "unknown_parameter",
            f"{I0}.lang",
        ),
        (input_parts(input_image(file_id="file-1")), "unsupported_parameter", f"{I0}.file_id"),
        (
            input_parts({"type": "input_file", "file_data": "data:application/pdf;base64,AAAA"}),
            "invalid_value",
            f"{I0}.type",
        ),
        (
            input_parts({"type": "output_text", "text": "x", "annotations": {}}, role="assistant"),
            "invalid_type",
            f"{I0}.annotations",
        ),
        (
            {
                "model": "llama3.2",
                "input": [
                    {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                    {
                        "type": "function_call_output",
                        "call_id": "c",
                        "output": [{"type": "input_file", "file_id": "file-1"}],
                    },
                ],
            },
            "invalid_value",
            "input.[1].output.[0].type",
        ),
    ],
    ids=[
        "detail-ultra",
        "breakpoint-ttl",
        "breakpoint-mode",
        "unknown-key",
        "image-file_id",
        "input_file",
        "annotations-object",
        "input_file-in-function-output",
    ],
)
def test_bad_responses_content_parts_are_400_naming_the_param(body, code, param):
    assert refusal_of(validate_responses, body) == (400, code, param)


# --- End to end: the official SDK through the gateway to the stand-in. ---

# A 1x1 transparent PNG.
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082"
    )
).decode()


def test_sdk_chat_with_image_detail_and_a_cache_breakpoint_reaches_ollama_intact(
    openai_client, ollama
):
    ollama.add_model("llava:7b", capabilities=["completion", "vision"])
    answer = openai_client.chat.completions.create(
        model="llava:7b",
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "What is in this picture?",
                        "prompt_cache_breakpoint": {"mode": "explicit", "ttl": "12h"},
                    },
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PIXEL}", "detail": "high"},
                    },
                ],
            }
        ],
    )
    assert answer.choices[0].message.content
    (message,) = ollama.last_request("/api/chat").body["messages"]
    assert message == {"role": "user", "content": "What is in this picture?", "images": [PIXEL]}


def test_sdk_audio_part_is_refused_before_ollama(openai_client, ollama):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(
            model="llama3.2",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
                    ],
                }
            ],
        )
    error = caught.value.body
    assert (error["code"], error["param"]) == ("invalid_value", "messages.[0].content.[0].type")
    assert "no audio" in error["message"]
    assert ollama.requests == []
