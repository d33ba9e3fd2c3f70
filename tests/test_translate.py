"""The pure translation rules: OpenAI request -> Ollama payload, Ollama answer -> OpenAI answer."""

import dataclasses

import pytest

from ollama_openai.model_names import find_model
from ollama_openai.translate import answers, chat, completions, envelope, models
from ollama_openai.translate.envelope import AnswerIdentity
from ollama_openai.translate.options import SamplingDefaults

NO_DEFAULTS = SamplingDefaults()
USER_HI = [{"role": "user", "content": "hi"}]


def chat_body(**fields):
    return {"model": "llama3.2", "messages": USER_HI, **fields}


FIXED_IDENTITY = AnswerIdentity("chatcmpl-1", 5, "m")


def chat_plan(identity=FIXED_IDENTITY, **fields):
    """The plan for a chat request, with a fixed identity so answers can be compared whole."""
    plan = chat.plan(chat_body(**fields), NO_DEFAULTS, "llama3.2")
    return dataclasses.replace(plan, identity=identity)


@pytest.mark.parametrize(
    ("fields", "options"),
    [
        ({}, {}),
        ({"temperature": 0.2}, {"temperature": 0.2}),
        ({"top_p": 0.5}, {"top_p": 0.5}),
        ({"max_tokens": 12}, {"num_predict": 12}),
        ({"max_completion_tokens": 34}, {"num_predict": 34}),
        ({"stop": "\n"}, {"stop": ["\n"]}),
        ({"stop": ["a", "b"]}, {"stop": ["a", "b"]}),
        ({"seed": 42}, {"seed": 42}),
        (
            {"frequency_penalty": 0.5, "presence_penalty": -0.5},
            {"frequency_penalty": 0.5, "presence_penalty": -0.5},
        ),
        ({"options": {"num_ctx": 8192}}, {"num_ctx": 8192}),
        # An OpenAI field the client set wins over the same raw Ollama option.
        ({"temperature": 0.1, "options": {"temperature": 0.9}}, {"temperature": 0.1}),
    ],
)
def test_sampling_fields_map_to_ollama_options(fields, options):
    payload = chat.chat_request_to_ollama(chat_body(**fields), NO_DEFAULTS)
    assert payload["options"] == options


@pytest.mark.parametrize(
    ("fields", "defaults", "options"),
    [
        ({}, SamplingDefaults(0.7, 1000), {"temperature": 0.7, "num_predict": 1000}),
        ({"temperature": 0}, SamplingDefaults(0.7, None), {"temperature": 0}),
        ({"max_tokens": 5}, SamplingDefaults(None, 1000), {"num_predict": 5}),
        ({"options": {"temperature": 1.5}}, SamplingDefaults(0.7, None), {"temperature": 1.5}),
        ({}, SamplingDefaults(None, None), {}),
    ],
)
def test_defaults_apply_only_when_the_request_leaves_the_field_unset(fields, defaults, options):
    assert chat.chat_request_to_ollama(chat_body(**fields), defaults)["options"] == options


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"role": "user", "content": "hi"}, {"role": "user", "content": "hi"}),
        ({"role": "developer", "content": "be brief"}, {"role": "system", "content": "be brief"}),
        ({"role": "assistant", "content": None}, {"role": "assistant", "content": ""}),
        (
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {"role": "user", "content": "a\nb"},
        ),
        (
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                ],
            },
            {"role": "user", "content": "what is this?", "images": ["iVBORw0K"]},
        ),
    ],
)
def test_messages_map_to_ollama_messages(message, expected):
    payload = chat.chat_request_to_ollama(chat_body(messages=[message]), NO_DEFAULTS)
    assert payload["messages"] == [expected]


@pytest.mark.parametrize(
    ("fields", "key", "value"),
    [
        ({"response_format": {"type": "json_object"}}, "format", "json"),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "object"}},
                }
            },
            "format",
            {"type": "object"},
        ),
        ({"reasoning_effort": "high"}, "think", "high"),
        ({"reasoning_effort": "none"}, "think", False),
        ({"think": True}, "think", True),
        ({"keep_alive": "10m"}, "keep_alive", "10m"),
        ({"stream": True}, "stream", True),
        ({}, "stream", False),
    ],
)
def test_top_level_fields_map_to_ollama_payload(fields, key, value):
    assert chat.chat_request_to_ollama(chat_body(**fields), NO_DEFAULTS)[key] == value


def test_text_response_format_sends_no_format():
    payload = chat.chat_request_to_ollama(chat_body(response_format={"type": "text"}), NO_DEFAULTS)
    assert "format" not in payload


def test_completion_request_maps_prompt_suffix_and_options():
    body = {"model": "m", "prompt": ["def f():"], "suffix": "return 1", "max_tokens": 9}
    [payload] = completions.completion_requests_to_ollama(body, NO_DEFAULTS)
    assert payload == {
        "model": "m",
        "prompt": "def f():",
        "suffix": "return 1",
        "stream": False,
        "options": {"num_predict": 9},
    }


DONE_LINE = {
    "model": "llama3.2",
    "message": {"role": "assistant", "content": "Hi there"},
    "done": True,
    "done_reason": "stop",
    "prompt_eval_count": 26,
    "eval_count": 7,
}


@pytest.mark.parametrize(
    ("done_reason", "finish"), [("stop", "stop"), ("length", "length"), (None, "stop")]
)
def test_finish_reason_follows_done_reason(done_reason, finish):
    assert answers.finish_reason(done_reason) == finish


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"prompt_eval_count": 26, "eval_count": 7}, (26, 7, 33)),
        ({"eval_count": 7}, (0, 7, 7)),  # a cached prompt has no prompt_eval_count
        ({}, (0, 0, 0)),
    ],
)
def test_usage_from_ollama_counters(answer, expected):
    usage = answers.usage(answer)
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == expected


def test_chat_answer_has_openai_shape():
    answer = chat_plan().answer([DONE_LINE])
    assert answer == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 5,
        "model": "m",
        "system_fingerprint": "fp_ollama",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi there", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 26, "completion_tokens": 7, "total_tokens": 33},
    }


def test_thinking_surfaces_as_reasoning_content():
    line = {**DONE_LINE, "message": {"role": "assistant", "content": "4", "thinking": "2+2"}}
    answer = chat_plan().answer([line])
    assert answer["choices"][0]["message"]["reasoning_content"] == "2+2"


def test_generate_answer_with_echo():
    line = {"response": " world", "done": True, "done_reason": "length", "eval_count": 1}
    plan = completions.plan({"model": "m", "prompt": "hello", "echo": True}, NO_DEFAULTS, "m")
    answer = plan.answer([line])
    assert answer["object"] == "text_completion"
    assert answer["choices"][0]["text"] == "hello world"
    assert answer["choices"][0]["finish_reason"] == "length"


def chunks(events):
    """The JSON of plain ``data:`` events, as a chat or completion stream sends them."""
    assert all(name is None for name, _ in events)
    return [data for _, data in events]


def test_chat_stream_chunks():
    stream = chat_plan(AnswerIdentity("chatcmpl-x", 7, "m")).translator()
    start = chunks(stream.start())
    [piece] = chunks(stream.piece({"message": {"role": "assistant", "content": "Hi"}}))
    empty = stream.piece({"message": {"role": "assistant", "content": ""}, "done": False})
    finish = chunks(stream.finish(DONE_LINE))
    assert [c["choices"][0]["delta"] for c in start] == [{"role": "assistant", "content": ""}]
    assert piece["choices"][0]["delta"] == {"content": "Hi"}
    assert empty == []
    assert stream.end(answers.usage(DONE_LINE)) == [(None, "[DONE]")]
    assert [c["choices"][0]["finish_reason"] for c in finish] == ["stop"]
    assert finish[0]["choices"][0]["delta"] == {}
    for chunk in [*start, piece, *finish]:
        assert (chunk["id"], chunk["created"], chunk["object"]) == (
            "chatcmpl-x",
            7,
            "chat.completion.chunk",
        )
        assert "usage" not in chunk


def test_include_usage_adds_null_usage_and_a_final_usage_chunk():
    stream = chat_plan(stream=True, stream_options={"include_usage": True}).translator()
    [piece] = chunks(stream.piece({"message": {"content": "a"}}))
    finish = chunks(stream.finish(DONE_LINE))
    *end, done = stream.end(answers.usage(DONE_LINE))
    assert piece["usage"] is None
    assert finish[0]["usage"] is None
    assert [chunk["choices"] for chunk in chunks(end)] == [[]]
    assert chunks(end)[0]["usage"] == {
        "prompt_tokens": 26,
        "completion_tokens": 7,
        "total_tokens": 33,
    }
    assert done == (None, "[DONE]")


def test_completion_stream_echoes_prompt_first():
    body = {"model": "m", "prompt": "Once", "echo": True, "stream": True}
    stream = completions.plan(body, NO_DEFAULTS, "m").translator()
    assert [c["choices"][0]["text"] for c in chunks(stream.start())] == ["Once"]
    [piece] = chunks(stream.piece({"response": " upon"}))
    assert piece["choices"][0]["text"] == " upon"
    [finish] = chunks(stream.finish({"done_reason": "length"}))
    assert finish["choices"][0]["finish_reason"] == "length"


TAGS = {
    "models": [
        {"name": "llama3.2:latest", "modified_at": "2025-05-01T10:00:00.123456789-07:00"},
        {"name": "hf.co/org/repo:Q4_K_M", "modified_at": "2025-05-01T17:00:00Z"},
        {"name": "localhost:5000/team/model:latest", "modified_at": "bad"},
    ]
}


def test_models_list_has_openai_shape():
    listed = models.ollama_models_to_openai(TAGS)
    assert listed["object"] == "list"
    assert listed["data"][0] == {
        "id": "llama3.2:latest",
        "object": "model",
        "created": 1746118800,
        "owned_by": "ollama",
    }
    assert listed["data"][1]["created"] == 1746118800
    assert listed["data"][2]["created"] == 0


def test_empty_model_list_is_a_list_not_null():
    assert models.ollama_models_to_openai({"models": None}) == {"object": "list", "data": []}


@pytest.mark.parametrize(
    ("requested", "found"),
    [
        ("llama3.2", "llama3.2:latest"),
        ("llama3.2:latest", "llama3.2:latest"),
        ("hf.co/org/repo:Q4_K_M", "hf.co/org/repo:Q4_K_M"),
        ("localhost:5000/team/model", "localhost:5000/team/model:latest"),
        ("hf.co/org/repo", None),
        ("llama3.2:1b", None),
    ],
)
def test_find_model_treats_a_missing_tag_as_latest(requested, found):
    entry = find_model(TAGS, requested)
    assert (entry and entry["name"]) == found


def test_ids_are_unique_and_prefixed():
    ids = {envelope.new_id("chatcmpl") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("chatcmpl-") and len(i) > 20 for i in ids)


def _reassembled(chunks):
    """A streamed choice put back together as a client does: its message and finish_reason."""
    message = {"role": "assistant", "content": "", "refusal": None}
    reasoning, calls, logprobs, finish = "", [], [], None
    for chunk in chunks:
        [choice] = chunk["choices"]
        delta = choice["delta"]
        message["content"] += delta.get("content") or ""
        reasoning += delta.get("reasoning_content") or ""
        calls += [
            {k: v for k, v in call.items() if k != "index"}
            for call in delta.get("tool_calls") or []
        ]
        logprobs += (choice["logprobs"] or {}).get("content") or []
        finish = choice["finish_reason"] or finish
    if calls:
        message["content"] = message["content"] or None
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = reasoning
    return message, (logprobs or None), finish


CALL_A = {"id": "call_a", "function": {"index": 0, "name": "f", "arguments": {"x": 1}}}
CALL_B = {"id": "call_b", "function": {"index": 1, "name": "g", "arguments": {}}}
LOGPROB = {"token": "Hi", "logprob": -0.5, "bytes": [72, 105], "top_logprobs": []}


@pytest.mark.parametrize(
    ("lines", "fields"),
    [
        ([{"message": {"content": "Hi"}}, {"message": {"content": " there"}}], {}),
        ([{"message": {"thinking": "hmm"}}, {"message": {"content": "4"}}], {}),
        ([{"message": {"content": "", "tool_calls": [CALL_A, CALL_B]}}], {}),
        ([{"message": {"tool_calls": [CALL_A]}}, {"message": {"tool_calls": [CALL_B]}}], {}),
        (
            [{"message": {"tool_calls": [CALL_A]}}, {"message": {"tool_calls": [CALL_B]}}],
            {"parallel_tool_calls": False},
        ),
        ([{"message": {"content": "Hi"}, "logprobs": [LOGPROB]}], {"logprobs": True}),
    ],
)
@pytest.mark.parametrize("done_reason", ["stop", "length"])
def test_streamed_and_whole_answers_follow_the_same_rules(lines, fields, done_reason):
    """Stream the lines, and give the same generation as Ollama's one non-streamed answer: the
    client ends up with the same message, logprobs and finish_reason either way."""
    done = {"message": {"content": ""}, "done": True, "done_reason": done_reason}
    stream = chat_plan(**fields).translator()
    events = [event for line in lines for event in stream.piece(line)] + stream.finish(done)
    whole_message = {"content": "".join(line["message"].get("content") or "" for line in lines)}
    thinking = "".join(line["message"].get("thinking") or "" for line in lines)
    if thinking:
        whole_message["thinking"] = thinking
    calls = [call for line in lines for call in line["message"].get("tool_calls") or []]
    if calls:
        whole_message["tool_calls"] = calls
    whole_logprobs = [entry for line in lines for entry in line.get("logprobs") or []]
    whole = {**done, "message": whole_message}
    if whole_logprobs:
        whole["logprobs"] = whole_logprobs
    [choice] = chat_plan(**fields).answer([whole])["choices"]
    message, logprobs, finish = _reassembled(chunks(events))
    assert message == choice["message"]
    assert logprobs == (choice["logprobs"] or {}).get("content")
    assert finish == choice["finish_reason"]
