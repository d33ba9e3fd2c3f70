"""The field tables: the README holds them as the code makes them, every field the official
Python SDK can send has a row (upgrading the pinned ``openai`` package shows what is new), and
the values accepted since the census reach Ollama as their rows say."""

import typing
from pathlib import Path

import pytest
import typing_extensions
from openai.types import chat as chat_types
from openai.types import completion_create_params, embedding_create_params
from openai.types.chat import chat_completion_content_part_image_param as image_part_param
from openai.types.chat import chat_completion_content_part_text_param as text_part_param
from openai.types.chat import chat_completion_stream_options_param
from openai.types.chat import completion_create_params as chat_params
from openai.types.responses import (
    easy_input_message_param,
    response_create_params,
    response_function_tool_call_param,
    response_input_image_param,
    response_input_item_param,
    response_output_message_param,
    response_reasoning_item_param,
    response_text_config_param,
)
from openai.types.shared.reasoning_effort import ReasoningEffort
from openai.types.shared_params import reasoning as reasoning_param

from ollama_openai.schemas.chat import REASONING_EFFORTS
from ollama_openai.schemas.chat_fields import CHAT_TABLE
from ollama_openai.schemas.completions import COMPLETION_TABLE
from ollama_openai.schemas.embeddings import EMBEDDING_TABLE
from ollama_openai.schemas.fields import Treatment
from ollama_openai.schemas.messages import CACHE_TTLS, IMAGE_DETAILS
from ollama_openai.schemas.responses_fields import RESPONSES_TABLE
from ollama_openai.translate.options import THINK_BY_EFFORT

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
TABLES = [CHAT_TABLE, COMPLETION_TABLE, EMBEDDING_TABLE, RESPONSES_TABLE]
# The deprecated "function" role: the SDK still types it, OpenAI itself refuses it on new models.
REFUSED_ROLES = {"function"}


@pytest.mark.parametrize("table", TABLES, ids=lambda table: table.endpoint)
def test_readme_holds_each_field_table_as_the_code_makes_it(table):
    assert table.markdown() in README, (
        f"README's table for {table.endpoint} differs from the code's: paste the output of "
        "`python -m ollama_openai.schemas`"
    )


def sdk_fields(typed_dict):
    """The keys a request TypedDict of the SDK declares, its bases' included."""
    keys = set()
    for cls in typed_dict.__mro__:
        keys |= set(getattr(cls, "__annotations__", {}))
    return keys


# "stream" lives in the SDK's streaming and non-streaming subclasses, not in their base.
@pytest.mark.parametrize(
    ("table", "typed_dict", "subclass_fields"),
    [
        (CHAT_TABLE, chat_params.CompletionCreateParamsBase, {"stream"}),
        (COMPLETION_TABLE, completion_create_params.CompletionCreateParamsBase, {"stream"}),
        (EMBEDDING_TABLE, embedding_create_params.EmbeddingCreateParams, set()),
        (RESPONSES_TABLE, response_create_params.ResponseCreateParamsBase, {"stream"}),
    ],
    ids=["chat", "completions", "embeddings", "responses"],
)
def test_every_request_field_the_sdk_can_send_has_a_row(table, typed_dict, subclass_fields):
    missing = (sdk_fields(typed_dict) | subclass_fields) - set(table.fields)
    assert not missing, f"{table.endpoint}: no row for {sorted(missing)}"


@pytest.mark.parametrize("table", [CHAT_TABLE, COMPLETION_TABLE], ids=["chat", "completions"])
def test_every_stream_option_the_sdk_can_send_has_a_row(table):
    options = sdk_fields(chat_completion_stream_options_param.ChatCompletionStreamOptionsParam)
    missing = {f"stream_options.{name}" for name in options} - set(table.fields)
    assert not missing, f"{table.endpoint}: no row for {sorted(missing)}"


MESSAGE_TYPES = {
    "system": chat_types.ChatCompletionSystemMessageParam,
    "developer": chat_types.ChatCompletionDeveloperMessageParam,
    "user": chat_types.ChatCompletionUserMessageParam,
    "assistant": chat_types.ChatCompletionAssistantMessageParam,
    "tool": chat_types.ChatCompletionToolMessageParam,
    "function": chat_types.ChatCompletionFunctionMessageParam,
}


@pytest.mark.parametrize("role", MESSAGE_TYPES)
def test_every_message_field_the_sdk_can_send_has_a_row(role):
    if role in REFUSED_ROLES:
        assert role not in CHAT_TABLE.message_fields
        return
    missing = sdk_fields(MESSAGE_TYPES[role]) - set(CHAT_TABLE.message_fields[role])
    assert not missing, f"{role} messages: no row for {sorted(missing)}"


def test_every_row_says_what_happens():
    for table in TABLES:
        rows = [*table.fields.values()]
        rows += [row for fields in table.message_fields.values() for row in fields.values()]
        rows += [row for fields in table.part_fields.values() for row in fields.values()]
        for row in rows:
            assert row.what.strip().endswith((".", ")")), row.what
            if row.harmless:
                assert row.treatment is Treatment.REFUSED


@pytest.mark.parametrize(
    ("path", "typed_dict"),
    [
        ("text", response_text_config_param.ResponseTextConfigParam),
        ("reasoning", reasoning_param.Reasoning),
        ("stream_options", response_create_params.StreamOptions),
    ],
)
def test_every_responses_option_the_sdk_can_send_has_a_row(path, typed_dict):
    missing = {f"{path}.{name}" for name in sdk_fields(typed_dict)} - set(RESPONSES_TABLE.fields)
    assert not missing, f"/v1/responses: no row for {sorted(missing)}"


INPUT_ITEM_TYPES = [
    (("user", "system", "developer"), easy_input_message_param.EasyInputMessageParam),
    (("user", "system", "developer"), response_input_item_param.Message),
    (("assistant",), response_output_message_param.ResponseOutputMessageParam),
    (("function_call",), response_function_tool_call_param.ResponseFunctionToolCallParam),
    (("function_call_output",), response_input_item_param.FunctionCallOutput),
    (("reasoning",), response_reasoning_item_param.ResponseReasoningItemParam),
    (("item_reference",), response_input_item_param.ItemReference),
]


@pytest.mark.parametrize(("kinds", "typed_dict"), INPUT_ITEM_TYPES, ids=lambda v: str(v))
def test_every_input_item_field_the_sdk_can_send_has_a_row(kinds, typed_dict):
    for kind in kinds:
        missing = sdk_fields(typed_dict) - set(RESPONSES_TABLE.message_fields[kind])
        assert not missing, f"/v1/responses {kind} items: no row for {sorted(missing)}"


def part_types(hint):
    """The content part TypedDicts a message field's type admits (in unions, iterables)."""
    if typing_extensions.is_typeddict(hint):
        return [hint]
    return [found for arg in typing.get_args(hint) for found in part_types(arg)]


def part_kind(typed_dict):
    (kind,) = typing.get_args(typing.get_type_hints(typed_dict)["type"])
    return kind


def part_fields(typed_dict, prefix=""):
    """The keys a content part TypedDict declares, its nested objects' dotted
    (``image_url.detail``); lists of objects (``annotations``) are one field."""
    keys = set()
    for name, hint in typing.get_type_hints(typed_dict).items():
        keys.add(prefix + name)
        alternatives = typing.get_args(hint) if typing.get_origin(hint) is typing.Union else ()
        for inner in (hint, *alternatives):
            if typing_extensions.is_typeddict(inner):
                keys |= part_fields(inner, f"{prefix}{name}.")
    return keys


# Where each table's holders (roles, item kinds) keep their parts in the SDK's types. Assistant
# messages of /v1/responses also take `input_text` (EasyInputMessage), which the table allows.
PART_HOLDERS = (
    [
        (CHAT_TABLE, role, MESSAGE_TYPES[role], "content")
        for role in ("system", "developer", "user", "assistant", "tool")
    ]
    + [
        (RESPONSES_TABLE, role, easy_input_message_param.EasyInputMessageParam, "content")
        for role in ("user", "system", "developer")
    ]
    + [
        (RESPONSES_TABLE, "user", response_input_item_param.Message, "content"),
        (
            RESPONSES_TABLE,
            "assistant",
            response_output_message_param.ResponseOutputMessageParam,
            "content",
        ),
        (
            RESPONSES_TABLE,
            "function_call_output",
            response_input_item_param.FunctionCallOutput,
            "output",
        ),
    ]
)


# Parts the SDK types allow where the gateway does not take them: images go in user messages,
# and one in a system or developer message is a 400 naming the part's type.
NOT_TAKEN = {
    ("/v1/responses", "system", "input_image"),
    ("/v1/responses", "developer", "input_image"),
}


@pytest.mark.parametrize(
    ("table", "holder", "typed_dict", "field"),
    PART_HOLDERS,
    ids=[f"{table.endpoint}-{holder}-{td.__name__}" for table, holder, td, _ in PART_HOLDERS],
)
def test_every_content_part_field_the_sdk_can_send_has_a_row(table, holder, typed_dict, field):
    parts = part_types(typing.get_type_hints(typed_dict)[field])
    assert parts, f"{typed_dict.__name__}.{field} admits no content parts"
    for part in parts:
        kind = part_kind(part)
        rows = table.part_fields.get(kind)
        assert rows is not None, f"{table.endpoint}: no rows for {kind!r} parts"
        if rows["type"].treatment is Treatment.REFUSED:
            # A refused kind is a 400 before any of its fields is read.
            continue
        missing = part_fields(part) - set(rows)
        assert not missing, f"{table.endpoint} {kind!r} parts: no row for {sorted(missing)}"
        if (table.endpoint, holder, kind) not in NOT_TAKEN:
            assert kind in table.part_kinds[holder], f"{table.endpoint}: {holder} takes {kind!r}"


@pytest.mark.parametrize("table", [CHAT_TABLE, RESPONSES_TABLE], ids=lambda t: t.endpoint)
def test_every_part_kind_a_holder_takes_has_rows(table):
    for holder, kinds in table.part_kinds.items():
        for kind in kinds:
            assert "type" in table.part_fields[kind], (holder, kind)
    taken = {kind for kinds in table.part_kinds.values() for kind in kinds}
    assert taken == set(table.part_fields)


def test_image_details_and_cache_ttls_are_the_sdks():
    detail = typing.get_type_hints(image_part_param.ImageURL)["detail"]
    assert set(typing.get_args(detail)) == set(IMAGE_DETAILS)
    detail = typing.get_type_hints(response_input_image_param.ResponseInputImageParam)["detail"]
    assert set(typing.get_args(detail)) == set(IMAGE_DETAILS)
    ttl = typing.get_type_hints(text_part_param.PromptCacheBreakpoint)["ttl"]
    assert set(typing.get_args(ttl)) == set(CACHE_TTLS)


def test_every_reasoning_effort_the_sdk_can_send_is_accepted_and_mapped():
    literal, _ = typing.get_args(ReasoningEffort)
    assert set(typing.get_args(literal)) == set(REASONING_EFFORTS) == set(THINK_BY_EFFORT)


# --- End to end: each value the gateway newly accepts, sent by the official SDK. ---

THINKER = "qwen3:8b"  # the stand-in reports the "thinking" capability for qwen3
ASK = [{"role": "user", "content": "What is 2+2?"}]


@pytest.mark.parametrize(
    ("row", "fields", "think"),
    [
        (CHAT_TABLE.fields["reasoning_effort"], {"reasoning_effort": "xhigh"}, "high"),
        (CHAT_TABLE.fields["reasoning_effort"], {"reasoning_effort": "max"}, "max"),
        (CHAT_TABLE.fields["think"], {"extra_body": {"think": "max"}}, "max"),
    ],
    ids=["reasoning_effort-xhigh", "reasoning_effort-max", "think-max"],
)
def test_new_thinking_levels_reach_ollama_as_their_row_says(
    openai_client, ollama, row, fields, think
):
    assert row.treatment in (Treatment.MAPPED, Treatment.HONOURED)
    answer = openai_client.chat.completions.create(model=THINKER, messages=ASK, **fields)
    assert ollama.last_request("/api/chat").body["think"] == think
    assert answer.choices[0].message.reasoning_content


def tool_history(**tool_fields):
    call = {
        "id": "call_abc",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Tokyo"}'},
    }
    return [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "sunny", **tool_fields},
    ]


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
INCLUDE_USAGE = {"stream": True, "stream_options": {"include_usage": True}}


@pytest.mark.parametrize(
    ("row", "without", "with_field"),
    [
        (
            CHAT_TABLE.fields["stream_options.include_obfuscation"],
            INCLUDE_USAGE,
            {
                "stream": True,
                "stream_options": {"include_usage": True, "include_obfuscation": True},
            },
        ),
        (
            CHAT_TABLE.fields["prompt_cache_options"],
            {},
            {"prompt_cache_options": {"mode": "explicit", "ttl": "30m"}},
        ),
        (
            CHAT_TABLE.message_fields["tool"]["name"],
            {"messages": tool_history(), "tools": [WEATHER]},
            {"messages": tool_history(name="get_weather"), "tools": [WEATHER]},
        ),
    ],
    ids=["stream_options.include_obfuscation", "prompt_cache_options", "tool-message-name"],
)
def test_newly_ignored_fields_leave_what_ollama_receives_unchanged(
    openai_client, ollama, row, without, with_field
):
    assert row.treatment is Treatment.IGNORED
    received = []
    for fields in (without, with_field):
        answer = openai_client.chat.completions.create(
            **{"model": "llama3.2", "messages": ASK, **fields}
        )
        if fields.get("stream"):
            answer = list(answer)
        assert answer
        received.append(ollama.last_request("/api/chat").body)
    assert received[0] == received[1]
