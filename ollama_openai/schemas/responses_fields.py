"""The field table of /v1/responses: every request field, every input item's fields, and their
fate. Input items are keyed by kind: a message's role, or the item's type."""

from __future__ import annotations

from .chat_fields import (
    CACHE_BREAKPOINT_ROWS,
    FILE_PART,
    IMAGE_DETAIL,
    INCLUDE_OBFUSCATION,
    MODEL,
    NO_EFFECT,
    OLLAMA_EXTRA,
    PART_REFUSAL,
    PART_TEXT,
    SAMPLING,
    STREAM_OPTIONS,
)
from .fields import FieldTable, honoured, ignored, mapped, refused

# Tools only OpenAI can run; the model does not see them and the request does not fail
# (Codex CLI always sends web_search).
HOSTED_TOOLS = frozenset(
    {
        "web_search",
        "web_search_2025_08_26",
        "web_search_preview",
        "web_search_preview_2025_03_11",
        "file_search",
        "code_interpreter",
        "computer",
        "computer_use_preview",
        "image_generation",
        "mcp",
        "local_shell",
        "shell",
        "apply_patch",
        "tool_search",
        "programmatic_tool_calling",
    }
)
INCLUDABLE = frozenset(
    {
        "reasoning.encrypted_content",
        "message.output_text.logprobs",
        "message.input_image.image_url",
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "computer_call_output.output.image_url",
        "code_interpreter_call.outputs",
    }
)

_ITEM_TYPE = honoured("`message` when left out.")
_ITEM_ID = honoured("Kept; the gateway gives an item without one an id.")
_ITEM_STATUS = ignored("The state an earlier response left the item in.")
_PHASE = ignored("`commentary` or `final_answer`, as OpenAI's models mark their messages.")
_MESSAGE = {
    "type": _ITEM_TYPE,
    "role": mapped("`user`, `system`, `developer` (sent as `system`), `assistant`."),
    "content": mapped(
        "A string, or a list of content parts (below); an assistant's parts are joined into "
        "its turn."
    ),
    "id": _ITEM_ID,
    "status": _ITEM_STATUS,
    "phase": _PHASE,
}
_CALLER = ignored("Who made the call; every call here is direct.")

# Which parts a message of each role, and a function output, may hold.
_PART_KINDS = {
    "user": ("input_text", "input_image", "input_file"),
    "system": ("input_text", "input_file"),
    "developer": ("input_text", "input_file"),
    "assistant": ("output_text", "refusal", "input_text"),
    "function_call_output": ("input_text", "input_image", "input_file"),
}
_PART_FIELDS = {
    "input_text": {
        "type": mapped("Text, in order, in the message's content."),
        "text": PART_TEXT,
        **CACHE_BREAKPOINT_ROWS,
    },
    "input_image": {
        "type": mapped("An image, for models with `vision`."),
        "image_url": mapped(
            "A `data:image/...;base64,` URL: its data goes to Ollama `images`; a link is "
            "refused (the gateway never fetches URLs)."
        ),
        "detail": IMAGE_DETAIL,
        "file_id": refused(
            "Files are stored at OpenAI: send the image inline as a data:image/...;base64, URL."
        ),
        **CACHE_BREAKPOINT_ROWS,
    },
    "input_file": {"type": FILE_PART},
    "output_text": {
        "type": mapped("An earlier answer's text, in order, in the assistant's turn."),
        "text": PART_TEXT,
        "annotations": ignored("Citations OpenAI's hosted tools made; the text stays as it is."),
        "logprobs": ignored("The log probabilities an earlier answer came with."),
    },
    "refusal": {
        "type": PART_REFUSAL,
        "refusal": PART_TEXT,
    },
}

RESPONSES_TABLE = FieldTable(
    endpoint="/v1/responses",
    item_label="input[]",
    fields={
        "model": MODEL,
        "input": mapped(
            "A string (one user message) or a list of items, below; with "
            "`previous_response_id` the stored conversation comes first."
        ),
        "instructions": mapped(
            "The first message, as `system`; a continued response does not carry over the "
            "instructions of the one it continues, as at OpenAI."
        ),
        "stream": honoured(
            "Named server-sent events (`event:` and `data:`), each with a rising "
            "`sequence_number`, ending with `response.completed`, `response.incomplete` or "
            "`response.failed`; no `[DONE]`."
        ),
        "stream_options": STREAM_OPTIONS,
        "stream_options.include_obfuscation": INCLUDE_OBFUSCATION,
        "tools": mapped(
            "`function` tools, and `namespace` tools (a group of functions, offered to the "
            "model flat; its calls name their namespace), go to Ollama. Hosted tools "
            "(`web_search`, `file_search`, `code_interpreter`, `computer_use_preview`, "
            "`image_generation`, `mcp`, ...) only OpenAI can run: the model does not see "
            "them, and they do not fail the request."
        ),
        "tool_choice": mapped(
            '`auto`, `none`, `required` and `{"type": "function", "name"}` as in chat '
            "(Ollama cannot force a call)."
        ),
        "parallel_tool_calls": honoured(
            "`true` (default): every call is returned; `false`: only the first."
        ),
        "temperature": SAMPLING,
        "top_p": SAMPLING,
        "max_output_tokens": mapped(
            "`options.num_predict`; a response that reaches it is `incomplete`, with "
            '`incomplete_details.reason: "max_output_tokens"`.'
        ),
        "top_logprobs": mapped(
            'Ollama `top_logprobs` (0-20), with `include: ["message.output_text.logprobs"]`.'
        ),
        "text": honoured("Its fields are below."),
        "text.format": mapped(
            '`text`; `json_object` -> Ollama `format: "json"`; `json_schema` -> its `schema`.'
        ),
        "text.verbosity": ignored("A length hint for OpenAI's models; Ollama has none."),
        "reasoning": honoured("Its fields are below."),
        "reasoning.effort": mapped("Ollama `think`, as chat's `reasoning_effort`."),
        "reasoning.summary": mapped(
            "Ollama has no summariser: the reasoning item's `summary` holds the whole "
            "thinking, streamed as summary events too."
        ),
        "reasoning.generate_summary": mapped("The older name of `reasoning.summary`."),
        "reasoning.context": ignored(
            "Which earlier reasoning OpenAI's models see again; Ollama gets what the "
            "conversation holds."
        ),
        "reasoning.mode": refused("Ollama has one mode.", "standard"),
        "include": honoured(
            "`reasoning.encrypted_content`: reasoning items carry their thinking for a client "
            "that keeps no state (Codex CLI); `message.output_text.logprobs`: log "
            "probabilities on the output text. The others name outputs of hosted tools, which "
            "never run here."
        ),
        "store": honoured(
            "`true` (the default): the response and its input are kept (see Stored responses)."
        ),
        "previous_response_id": honoured(
            "Continues a stored response: its conversation (inputs and outputs, back to the "
            "first) comes before the new input."
        ),
        "metadata": honoured("Kept with the response and echoed back."),
        "truncation": honoured(
            "`disabled`: a conversation longer than the model's context window is a 400 "
            "`context_length_exceeded` (in a stream, `response.failed` with that code), as at "
            "OpenAI, and a generation that fills the window ends `incomplete`; `auto`: Ollama "
            "drops the oldest items until it fits. Unset: the model's `context_overflow` "
            "(models file), else `CONTEXT_OVERFLOW`; the response echoes what applied."
        ),
        "max_tool_calls": ignored("It counts calls to hosted tools, which never run here."),
        "options": OLLAMA_EXTRA,
        "keep_alive": OLLAMA_EXTRA,
        "think": OLLAMA_EXTRA,
        "user": NO_EFFECT,
        "service_tier": NO_EFFECT,
        "safety_identifier": NO_EFFECT,
        "prompt_cache_key": NO_EFFECT,
        "prompt_cache_retention": NO_EFFECT,
        "prompt_cache_options": NO_EFFECT,
        "client_metadata": NO_EFFECT,
        "access_programs": NO_EFFECT,
        "image": ignored("Image context compression at OpenAI."),
        "background": refused(
            "Ollama answers while the client waits; there is no background queue.", False
        ),
        "background_options": refused("It goes with `background`.", {}),
        "conversation": refused(
            "The gateway keeps responses, not conversation objects: use `previous_response_id`."
        ),
        "prompt": refused("Prompt templates are stored at OpenAI."),
        "context_management": refused("Compaction on the server is OpenAI's.", []),
        "moderation": refused("Ollama has no moderation."),
    },
    message_fields={
        "user": _MESSAGE,
        "system": _MESSAGE,
        "developer": _MESSAGE,
        "assistant": _MESSAGE,
        "function_call": {
            "type": _ITEM_TYPE,
            "call_id": honoured("Its `function_call_output` answers it."),
            "name": honoured("The function (in its `namespace`, if any)."),
            "namespace": honoured("The namespace tool the function belongs to."),
            "arguments": mapped("A JSON string; Ollama gets the object."),
            "id": _ITEM_ID,
            "status": _ITEM_STATUS,
            "caller": _CALLER,
            "async": ignored("Every call is answered before the next turn."),
        },
        "function_call_output": {
            "type": _ITEM_TYPE,
            "call_id": mapped(
                "Must answer a `function_call` of the conversation; Ollama gets the function's "
                "name as `tool_name`."
            ),
            "output": mapped("A string, or content parts as a message's (below)."),
            "name": ignored("The function, which `call_id` already names."),
            "namespace": ignored("The function's namespace, which `call_id` already names."),
            "id": _ITEM_ID,
            "status": _ITEM_STATUS,
            "caller": _CALLER,
        },
        "reasoning": {
            "type": _ITEM_TYPE,
            "id": _ITEM_ID,
            "content": mapped("Its `reasoning_text` goes back to Ollama as the turn's `thinking`."),
            "summary": mapped("The thinking, when the item has no `content`."),
            "encrypted_content": mapped(
                "Read back when this gateway made it (it carries the thinking); another's "
                "cannot be read and is dropped."
            ),
            "status": _ITEM_STATUS,
        },
        "item_reference": {
            "type": mapped(
                "Replaced by the stored item its `id` names: an input or output item of an "
                "earlier stored response of the same API key (the Vercel AI SDK refers to its "
                "earlier answers so while `store` is on)."
            ),
            "id": mapped(
                "The item's id; one that names no stored item of this key (another key's, an "
                "item of a response made with `store: false`, expired or deleted, an id made by "
                "OpenAI or before item ids named their response) is a 400 `invalid_value` with "
                "`param` `input.[n].id`."
            ),
        },
    },
    part_kinds=_PART_KINDS,
    part_fields=_PART_FIELDS,
    part_label="input[].content[]",
)
