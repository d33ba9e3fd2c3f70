"""The field table of /v1/chat/completions: every request and message field, and its fate."""

from __future__ import annotations

from .fields import FieldTable, honoured, ignored, mapped, refused

# Rows more than one endpoint uses.
MODEL = honoured(
    "May be an alias (`MODEL_ALIASES`, or the models file's, with settings of its own); the "
    "answer names the model asked for."
)
STREAM = honoured("Server-sent events: one `data:` event per chunk, then `data: [DONE]`.")
STREAM_OPTIONS = honoured("Only with `stream: true`; its fields are below.")
INCLUDE_USAGE = honoured(
    "A last chunk with `choices: []` and `usage` (summed over all choices); the other chunks "
    'carry `"usage": null`.'
)
INCLUDE_OBFUSCATION = ignored(
    "OpenAI pads streamed chunks against length side channels; the gateway sends no padding."
)
SAMPLING = mapped("Ollama `options` of the same name.")
SEED = mapped(
    "Ollama `options.seed`; with `n` > 1 it is offset by the choice index (seed, seed+1, ...), "
    "so the choices differ yet stay reproducible."
)
MAX_TOKENS = mapped("`options.num_predict`; set one of the two, not both.")
STOP = mapped("`options.stop` (a string or up to 4 strings).")
OLLAMA_EXTRA = honoured(
    "Ollama's own knobs, sent as they are (the SDK's `extra_body`, see Ollama extras), over the "
    "model's settings in the models file; an OpenAI field the request also sets wins over the "
    "same option. The models file's policy may refuse or cap them."
)
TRUNCATE = honoured(
    "Ollama's `truncate` (the SDK's `extra_body`): `false` makes a prompt longer than the "
    "context window a 400 `context_length_exceeded` (an error event in a stream) and stops a "
    'generation that fills the window with `finish_reason: "length"` (`shift: false`); `true` '
    "lets Ollama drop the oldest messages. Unset: the model's `context_overflow` (models file), "
    "else `CONTEXT_OVERFLOW`."
)
NO_EFFECT = ignored(
    "Billing, storage, caching or tracing at OpenAI: they do not change what the model generates."
)
# The fields NO_EFFECT covers, on every endpoint.
NO_EFFECT_FIELDS = (
    "user",
    "store",
    "metadata",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "prompt_cache_options",
)
# Rows chat and completions share, in the order their tables list them.
STREAM_ROWS = {
    "stream": STREAM,
    "stream_options": STREAM_OPTIONS,
    "stream_options.include_usage": INCLUDE_USAGE,
    "stream_options.include_obfuscation": INCLUDE_OBFUSCATION,
}
SAMPLING_ROWS = {
    "temperature": SAMPLING,
    "top_p": SAMPLING,
    "frequency_penalty": SAMPLING,
    "presence_penalty": SAMPLING,
    "seed": SEED,
    "max_tokens": MAX_TOKENS,
    "max_completion_tokens": MAX_TOKENS,
    "stop": STOP,
}
EXTRA_ROWS = {
    "options": OLLAMA_EXTRA,
    "keep_alive": OLLAMA_EXTRA,
    "think": OLLAMA_EXTRA,
    "truncate": TRUNCATE,
}
LOGIT_BIAS = refused("Ollama has no token biasing.", {})

_NAME = ignored("A participant's name; Ollama's messages have none.")
_CONTENT = mapped("A string, or a list of content parts (below), as one Ollama message.")
_ROLE = mapped("`system`, `developer` (sent as `system`), `user`, `assistant`, `tool`.")
# What an answer's message carries when a client appends it to its history: nothing to act on.
_ECHOED = ignored("Part of an answer's message that clients append to their history.")

# Rows of content parts the two generating endpoints with messages share.
IMAGE_DETAIL = ignored(
    "Ollama sees every image at the model's one resolution; the value must still be one of "
    "`auto`, `low`, `high`, `original`."
)
CACHE_BREAKPOINT = ignored(
    "Ollama reuses the longest cached prefix of the conversation by itself; its shape is "
    "still checked."
)
CACHE_BREAKPOINT_MODE = ignored("Must be `explicit`.")
CACHE_BREAKPOINT_TTL = ignored("Must be `30m` or `12h`.")
CACHE_BREAKPOINT_ROWS = {
    "prompt_cache_breakpoint": CACHE_BREAKPOINT,
    "prompt_cache_breakpoint.mode": CACHE_BREAKPOINT_MODE,
    "prompt_cache_breakpoint.ttl": CACHE_BREAKPOINT_TTL,
}
PART_TEXT = honoured("The text.")
PART_REFUSAL = mapped("The refusal an earlier answer gave, sent back as text.")
FILE_PART = refused(
    "Ollama reads no documents: send a document's text as text, an image as an image part."
)

# Which parts each role's content may hold, as the SDK's message types list them.
_PART_KINDS = {
    "system": ("text",),
    "developer": ("text",),
    "user": ("text", "image_url", "input_audio", "file"),
    "assistant": ("text", "refusal"),
    "tool": ("text",),
}
_PART_FIELDS = {
    "text": {
        "type": mapped("Joined with newlines, in order, into the message's `content`."),
        "text": PART_TEXT,
        **CACHE_BREAKPOINT_ROWS,
    },
    "image_url": {
        "type": mapped("An image, for models with `vision`."),
        "image_url": honoured("Its fields are below."),
        "image_url.url": mapped(
            "A `data:image/...;base64,` URL: its data goes to Ollama `images`; a link is "
            "refused (the gateway never fetches URLs)."
        ),
        "image_url.detail": IMAGE_DETAIL,
        **CACHE_BREAKPOINT_ROWS,
    },
    "refusal": {
        "type": PART_REFUSAL,
        "refusal": PART_TEXT,
    },
    "input_audio": {"type": refused("Ollama's models take no audio.")},
    "file": {"type": FILE_PART},
}

CHAT_TABLE = FieldTable(
    endpoint="/v1/chat/completions",
    fields={
        "model": MODEL,
        "messages": honoured("At most `MAX_MESSAGES`; their fields are below."),
        **STREAM_ROWS,
        "n": honoured(
            "1 to `MAX_N` generations run concurrently: choices `index` 0..n-1, streamed "
            "interleaved as they come, `usage` summed."
        ),
        **SAMPLING_ROWS,
        "tools": mapped("Ollama `tools` (function tools only; other types are refused)."),
        "tool_choice": mapped(
            "`auto` (the default): all tools; `none`: no tools are sent; "
            '`{"type": "function", "function": {"name"}}`: only that tool is sent; '
            "`required`: all tools are sent, but Ollama cannot force a call, so the model may "
            "still answer in text."
        ),
        "parallel_tool_calls": honoured(
            "`true` (default): every call is returned; `false`: only the first call of an "
            "answer is returned."
        ),
        "response_format": mapped(
            '`json_object` -> `format: "json"`, `json_schema` -> its `schema`, `text` -> nothing.'
        ),
        "reasoning_effort": mapped(
            'Ollama `think`: `none` -> `false`, `minimal`/`low` -> `"low"`, `medium`, '
            '`high`/`xhigh` -> `"high"` (the highest level every Ollama with levels takes), '
            '`max` -> `"max"` (Ollama 0.21.3 or newer; older ones answer 400); thinking '
            "comes back as `message.reasoning_content` (`delta.reasoning_content` in streams)."
        ),
        "logprobs": mapped(
            "Ollama `logprobs` (0.12.11 or newer): `choices[].logprobs.content` with `token`, "
            "`logprob`, `bytes`, `top_logprobs`, in streams too; `null` from older servers."
        ),
        "top_logprobs": mapped("Ollama `top_logprobs` (0-20); needs `logprobs: true`."),
        **EXTRA_ROWS,
        **dict.fromkeys(NO_EFFECT_FIELDS, NO_EFFECT),
        "logit_bias": LOGIT_BIAS,
        "functions": refused("The deprecated function calling; send `tools`.", []),
        "function_call": refused(
            "The deprecated function calling; send `tool_choice`.", "none", "auto"
        ),
        "audio": refused("Ollama's models produce no audio."),
        "modalities": refused("Ollama's models answer in text only.", ["text"]),
        "prediction": refused("Ollama has no predicted outputs."),
        "web_search_options": refused("Ollama cannot search the web."),
        "verbosity": refused("Ollama has no verbosity control."),
        "moderation": refused("Ollama has no moderation."),
    },
    message_fields={
        role: {"role": _ROLE, "content": _CONTENT, "name": _NAME}
        for role in ("system", "developer", "user")
    }
    | {
        "assistant": {
            "role": _ROLE,
            "content": mapped(
                "A string (`null` with `tool_calls`), or `text` and `refusal` parts, as for the "
                "other roles."
            ),
            "name": _NAME,
            "tool_calls": mapped(
                "Sent back to Ollama with `arguments` as an object; arguments that are not a "
                "JSON object are a 400."
            ),
            "reasoning_content": mapped("Ollama `thinking`."),
            "refusal": _ECHOED,
            "annotations": _ECHOED,
            "audio": refused("Ollama's models produce no audio."),
            "function_call": refused("The deprecated function calling; send `tool_calls`."),
        },
        "tool": {
            "role": _ROLE,
            "content": mapped("A string or `text` parts: the tool's result."),
            "tool_call_id": mapped(
                "Must answer a tool call of an earlier assistant message; Ollama gets that "
                "call's function name as `tool_name`."
            ),
            "name": ignored(
                "The tool's name, which clients such as LangChain copy onto results; Ollama "
                "gets the name of the call that `tool_call_id` answers."
            ),
        },
    },
    part_kinds=_PART_KINDS,
    part_fields=_PART_FIELDS,
)
