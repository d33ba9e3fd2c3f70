"""The field tables: the README holds them as the code makes them, and every field the official
Python SDK can send has a row (upgrading the pinned ``openai`` package shows what is new)."""

from pathlib import Path

import pytest
from openai.types import chat as chat_types
from openai.types import completion_create_params, embedding_create_params
from openai.types.chat import chat_completion_stream_options_param
from openai.types.chat import completion_create_params as chat_params
from openai.types.responses import (
    easy_input_message_param,
    response_create_params,
    response_function_tool_call_param,
    response_input_item_param,
    response_output_message_param,
    response_reasoning_item_param,
    response_text_config_param,
)
from openai.types.shared_params import reasoning as reasoning_param

from ollama_openai.schemas.chat_fields import CHAT_TABLE
from ollama_openai.schemas.completions import COMPLETION_TABLE
from ollama_openai.schemas.embeddings import EMBEDDING_TABLE
from ollama_openai.schemas.fields import Treatment
from ollama_openai.schemas.responses_fields import RESPONSES_TABLE

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
]


@pytest.mark.parametrize(("kinds", "typed_dict"), INPUT_ITEM_TYPES, ids=lambda v: str(v))
def test_every_input_item_field_the_sdk_can_send_has_a_row(kinds, typed_dict):
    for kind in kinds:
        missing = sdk_fields(typed_dict) - set(RESPONSES_TABLE.message_fields[kind])
        assert not missing, f"/v1/responses {kind} items: no row for {sorted(missing)}"
