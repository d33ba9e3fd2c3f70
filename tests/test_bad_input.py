"""A battery of malformed requests against the real stack (gunicorn, gevent, keys, limits).

Each must get a 4xx OpenAI envelope with the status, code and param pinned here (what a client
reads to tell what was wrong), never a 500 or a traceback; the gateway must stay healthy and must
never call Ollama anywhere but its known endpoints, whatever the model name says.
"""

import http.client
import json
import math
import socket

import pytest
import requests

from tests.conftest import SECURED_KEYS

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
# Ollama paths the gateway may call; a model name must never add another.
OLLAMA_PATHS = {
    "/api/version",
    "/api/tags",
    "/api/ps",
    "/api/show",
    "/api/chat",
    "/api/generate",
    "/api/embed",
}
EMBEDDINGS = "/v1/embeddings"
# Far deeper than Python's recursion limit, so a naive parser would crash on it.
DEEP = "[" * 100_000 + "]" * 100_000
DROP = object()
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


def chat(**changes):
    """A valid chat body with fields changed (DROP removes one)."""
    body = {"model": "llama3.2", "messages": [{"role": "user", "content": "Hi"}]}
    body.update(changes)
    return {name: value for name, value in body.items() if value is not DROP}


def message(**changes):
    """A chat body whose one message has fields changed."""
    entry = {"role": "user", "content": "Hi"}
    entry.update(changes)
    return chat(messages=[{k: v for k, v in entry.items() if v is not DROP}])


def completion(**changes):
    body = {"model": "llama3.2", "prompt": "Once upon a time"}
    body.update(changes)
    return {name: value for name, value in body.items() if value is not DROP}


def raw(text, content_type="application/json"):
    """A body sent byte for byte, with its own content type (None sends none)."""
    return (text.encode() if isinstance(text, str) else text, content_type)


def case(case_id, body, expected, path=CHAT, method="POST"):
    """One request and the (status, code, param) of the error the gateway answers it with."""
    return pytest.param(method, path, body, expected, id=case_id)


def bad(code, param=None):
    """The answer to a request the gateway reads and refuses: a 400 with ``code``."""
    return (400, code, param)


# The answers several cases share: (status, code, param).
NOT_JSON = bad("invalid_json")
NOT_AN_OBJECT = bad("invalid_type")
NOT_JSON_CONTENT = bad("invalid_content_type")
NO_SUCH_MODEL = (404, "model_not_found", "model")
UNKNOWN_URL = (404, "unknown_url", None)
WRONG_METHOD = (405, "method_not_allowed", None)


CASES = [
    # --- Not JSON, or not a JSON object. ---
    case("chat-not-json", raw("hello"), NOT_JSON),
    case("chat-empty-body", raw(""), NOT_JSON),
    case("chat-truncated", raw('{"model": "llama3.2", "messages": ['), NOT_JSON),
    case("chat-array", raw("[]"), NOT_AN_OBJECT),
    case("chat-array-of-bodies", raw(json.dumps([chat()])), NOT_AN_OBJECT),
    case("chat-number", raw("42"), NOT_AN_OBJECT),
    case("chat-string", raw('"hello"'), NOT_AN_OBJECT),
    case("chat-null", raw("null"), NOT_AN_OBJECT),
    case("chat-boolean", raw("true"), NOT_AN_OBJECT),
    case("chat-text-plain", raw(json.dumps(chat()), "text/plain"), NOT_JSON_CONTENT),
    case("chat-no-content-type", raw(json.dumps(chat()), None), NOT_JSON_CONTENT),
    case("form", raw("model=llama3.2", "application/x-www-form-urlencoded"), NOT_JSON_CONTENT),
    case("chat-invalid-utf8", raw(b'{"model": "\xff\xfe"}'), NOT_JSON),
    case("chat-deeply-nested-body", raw(DEEP), NOT_JSON),
    case(
        "chat-deeply-nested-content",
        raw('{"model": "llama3.2", "messages": [{"role": "user", "content": ' + DEEP + "}]}"),
        NOT_JSON,
    ),
    case(
        "chat-duplicate-key", raw('{"model": "llama3.2", "model": 7}'), bad("invalid_type", "model")
    ),
    case("chat-binary", raw(b"\x00\x01\x02\x03"), NOT_JSON),
    # --- model: nulls, wrong types, path tricks (never part of an upstream URL). ---
    case("model-missing", chat(model=DROP), bad("missing_required_parameter", "model")),
    case("model-null", chat(model=None), bad("missing_required_parameter", "model")),
    case("model-number", chat(model=7), bad("invalid_type", "model")),
    case("model-empty", chat(model=""), bad("invalid_type", "model")),
    case("model-blank", chat(model="   "), bad("invalid_type", "model")),
    case("model-array", chat(model=["llama3.2"]), bad("invalid_type", "model")),
    case("model-object", chat(model={"$ne": None}), bad("invalid_type", "model")),
    case("model-dot-dot", chat(model="../../api/delete"), NO_SUCH_MODEL),
    case("model-dot-dot-suffix", chat(model="llama3.2/../../api/pull"), NO_SUCH_MODEL),
    case("model-percent-encoded", chat(model="%2e%2e%2fapi%2fdelete"), NO_SUCH_MODEL),
    case("model-url", chat(model="http://169.254.169.254/latest"), NO_SUCH_MODEL),
    case("model-query", chat(model="llama3.2?x=1#frag"), NO_SUCH_MODEL),
    case("model-control-chars", chat(model="llama\u0000\u001b[31m"), NO_SUCH_MODEL),
    case("model-lone-surrogate", chat(model="\ud800"), bad("invalid_value", "model")),
    case("model-bidi", chat(model="\u202emodel\u200b"), NO_SUCH_MODEL),
    case("model-huge", chat(model="m" * 100_000), NO_SUCH_MODEL),
    # --- messages. ---
    case("messages-missing", chat(messages=DROP), bad("missing_required_parameter", "messages")),
    case("messages-null", chat(messages=None), bad("missing_required_parameter", "messages")),
    case("messages-string", chat(messages="Hi"), bad("invalid_type", "messages")),
    case("messages-empty", chat(messages=[]), bad("invalid_type", "messages")),
    case("messages-null-entry", chat(messages=[None]), bad("invalid_type", "messages.[0]")),
    case("messages-numbers", chat(messages=[1, 2]), bad("invalid_type", "messages.[0]")),
    case("messages-object", chat(messages={"role": "user"}), bad("invalid_type", "messages")),
    case(
        "messages-too-many",
        chat(messages=[{"role": "user"}] * 2049),
        bad("array_above_max_length", "messages"),
    ),
    case("role-missing", message(role=DROP), bad("invalid_value", "messages.[0].role")),
    case("role-null", message(role=None), bad("invalid_value", "messages.[0].role")),
    case("role-unknown", message(role="hacker"), bad("invalid_value", "messages.[0].role")),
    case("role-tool", message(role="tool"), bad("invalid_type", "messages.[0].tool_call_id")),
    case("role-uppercase", message(role="USER"), bad("invalid_value", "messages.[0].role")),
    case("role-array", message(role=["user"]), bad("invalid_value", "messages.[0].role")),
    case("content-number", message(content=42), bad("invalid_type", "messages.[0].content")),
    case(
        "content-object",
        message(content={"text": "x"}),
        bad("invalid_type", "messages.[0].content"),
    ),
    case(
        "content-null-part",
        message(content=[None]),
        bad("invalid_type", "messages.[0].content.[0]"),
    ),
    case(
        "content-unknown-part",
        message(content=[{"type": "evil"}]),
        bad("invalid_value", "messages.[0].content.[0].type"),
    ),
    case(
        "content-text-type",
        message(content=[{"type": "text", "text": 5}]),
        bad("invalid_type", "messages.[0].content.[0].text"),
    ),
    case(
        "image-remote-url",
        message(content=[{"type": "image_url", "image_url": {"url": "http://10.0.0.1/a.png"}}]),
        bad("invalid_image_url", "messages.[0].content.[0].image_url.url"),
    ),
    case(
        "image-file-url",
        message(content=[{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]),
        bad("invalid_image_url", "messages.[0].content.[0].image_url.url"),
    ),
    case(
        "image-not-base64",
        message(content=[{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]),
        bad("invalid_image_url", "messages.[0].content.[0].image_url.url"),
    ),
    case(
        "image-missing-url",
        message(content=[{"type": "image_url"}]),
        bad("invalid_type", "messages.[0].content.[0].image_url"),
    ),
    case(
        "message-unknown-field",
        message(extra="x"),
        bad("unsupported_parameter", "messages.[0].extra"),
    ),
    # --- Numbers: negative, huge, not finite, wrong type. ---
    case("temperature-negative", chat(temperature=-1), bad("invalid_value", "temperature")),
    case("temperature-huge", chat(temperature=1e308), bad("invalid_value", "temperature")),
    case("temperature-string", chat(temperature="hot"), bad("invalid_type", "temperature")),
    # json.dumps writes the NaN and Infinity that strict JSON has no words for.
    case(
        "temperature-nan",
        raw(json.dumps(chat(temperature=math.nan))),
        bad("invalid_type", "temperature"),
    ),
    case(
        "temperature-inf",
        raw(json.dumps(chat(temperature=math.inf))),
        bad("invalid_type", "temperature"),
    ),
    case("top-p-boolean", chat(top_p=True), bad("invalid_type", "top_p")),
    case("max-tokens-negative", chat(max_tokens=-5), bad("invalid_value", "max_tokens")),
    case("max-tokens-zero", chat(max_tokens=0), bad("invalid_value", "max_tokens")),
    case("max-tokens-huge", chat(max_tokens=10**30), bad("invalid_value", "max_tokens")),
    case("max-tokens-fraction", chat(max_tokens=1.5), bad("invalid_type", "max_tokens")),
    case(
        "max-completion-tokens-string",
        chat(max_completion_tokens="10"),
        bad("invalid_type", "max_completion_tokens"),
    ),
    case("seed-huge", chat(seed=2**64), bad("invalid_value", "seed")),
    case("seed-very-negative", chat(seed=-(2**70)), bad("invalid_value", "seed")),
    case("n-negative", chat(n=-1), bad("invalid_value", "n")),
    case("n-huge", chat(n=10**9), bad("invalid_value", "n")),
    case(
        "presence-penalty-low", chat(presence_penalty=-3), bad("invalid_value", "presence_penalty")
    ),
    # --- Other fields. ---
    case("stream-string", chat(stream="yes"), bad("invalid_type", "stream")),
    case(
        "stream-options-alone",
        chat(stream_options={"include_usage": True}),
        bad("invalid_value", "stream_options"),
    ),
    case("stop-too-many", chat(stop=["a", "b", "c", "d", "e"]), bad("invalid_value", "stop")),
    case("stop-numbers", chat(stop=[1, 2]), bad("invalid_type", "stop")),
    case(
        "response-format-string",
        chat(response_format="json"),
        bad("invalid_type", "response_format"),
    ),
    case(
        "response-format-unknown",
        chat(response_format={"type": "xml"}),
        bad("invalid_value", "response_format.type"),
    ),
    case(
        "reasoning-effort-unknown",
        chat(reasoning_effort="maximum"),
        bad("invalid_value", "reasoning_effort"),
    ),
    case("options-string", chat(options="num_ctx=8192"), bad("invalid_type", "options")),
    case("keep-alive-array", chat(keep_alive=[1]), bad("invalid_type", "keep_alive")),
    case("unknown-field", chat(foo="bar"), bad("unknown_parameter", "foo")),
    case("unknown-field-control-char", chat(**{"\u0000": 1}), bad("unknown_parameter", "\u0000")),
    case(
        "unknown-field-huge-name", chat(**{"x" * 10_000: 1}), bad("unknown_parameter", "x" * 10_000)
    ),
    case("logit-bias", chat(logit_bias={"1": 100}), bad("unsupported_parameter", "logit_bias")),
    case(
        "nulls-everywhere",
        {
            "model": None,
            "messages": None,
            "temperature": None,
            "stream": None,
            "stop": None,
            "max_tokens": None,
        },
        bad("missing_required_parameter", "model"),
    ),
    # --- /v1/completions. ---
    case("completion-not-json", raw("hello"), NOT_JSON, COMPLETIONS),
    case("completion-array", raw("[1, 2]"), NOT_AN_OBJECT, COMPLETIONS),
    case("completion-number", raw("3.14"), NOT_AN_OBJECT, COMPLETIONS),
    case(
        "completion-html", raw(json.dumps(completion()), "text/html"), NOT_JSON_CONTENT, COMPLETIONS
    ),
    case("completion-deeply-nested", raw(DEEP), NOT_JSON, COMPLETIONS),
    case("prompt-missing", completion(prompt=DROP), bad("invalid_type", "prompt"), COMPLETIONS),
    case("prompt-null", completion(prompt=None), bad("invalid_type", "prompt"), COMPLETIONS),
    case("prompt-number", completion(prompt=42), bad("invalid_type", "prompt"), COMPLETIONS),
    case(
        "prompt-tokens",
        completion(prompt=[1, 2, 3]),
        bad("unsupported_value", "prompt"),
        COMPLETIONS,
    ),
    case(
        "prompt-token-lists",
        completion(prompt=[[1, 2]]),
        bad("unsupported_value", "prompt"),
        COMPLETIONS,
    ),
    case(
        "prompts-above-max-n",
        completion(prompt=["a"] * 9),
        bad("invalid_value", "prompt"),
        COMPLETIONS,
    ),
    case(
        "prompt-object",
        completion(prompt={"text": "x"}),
        bad("invalid_type", "prompt"),
        COMPLETIONS,
    ),
    case("best-of", completion(best_of=5), bad("unsupported_parameter", "best_of"), COMPLETIONS),
    case("echo-string", completion(echo="yes"), bad("invalid_type", "echo"), COMPLETIONS),
    case("suffix-number", completion(suffix=5), bad("invalid_type", "suffix"), COMPLETIONS),
    case(
        "completion-logprobs-above-5",
        completion(logprobs=6),
        bad("invalid_value", "logprobs"),
        COMPLETIONS,
    ),
    case(
        "completion-max-tokens",
        completion(max_tokens=-1),
        bad("invalid_value", "max_tokens"),
        COMPLETIONS,
    ),
    case(
        "completion-nulls",
        completion(model=None, prompt=None),
        bad("missing_required_parameter", "model"),
        COMPLETIONS,
    ),
    case("completion-dot-dot", completion(model="../../api/delete"), NO_SUCH_MODEL, COMPLETIONS),
    case(
        "completion-chat-field",
        completion(messages=[]),
        bad("unknown_parameter", "messages"),
        COMPLETIONS,
    ),
    # --- /v1/embeddings. ---
    case("embeddings-not-json", raw("hello"), NOT_JSON, EMBEDDINGS),
    case(
        "embeddings-no-input",
        {"model": "nomic-embed-text"},
        bad("invalid_type", "input"),
        EMBEDDINGS,
    ),
    case(
        "embed-tokens",
        {"model": "nomic-embed-text", "input": [1, 2]},
        bad("unsupported_value", "input"),
        EMBEDDINGS,
    ),
    case(
        "embed-empty",
        {"model": "nomic-embed-text", "input": [""]},
        bad("invalid_value", "input.[0]"),
        EMBEDDINGS,
    ),
    case("embed-dot-dot", {"model": "../../api/delete", "input": "x"}, NO_SUCH_MODEL, EMBEDDINGS),
    # --- Models, unknown paths, wrong methods. ---
    case(
        "models-dot-dot",
        None,
        NO_SUCH_MODEL,
        "/v1/models/%2e%2e%2f%2e%2e%2fapi%2fdelete",
        method="GET",
    ),
    case(
        "models-dot-dot-mixed", None, NO_SUCH_MODEL, "/v1/models/..%2f..%2fapi%2fpull", method="GET"
    ),
    case(
        "models-url", None, NO_SUCH_MODEL, "/v1/models/http%3A%2F%2Fevil.example%2F", method="GET"
    ),
    case("models-control-chars", None, UNKNOWN_URL, "/v1/models/%00%0a", method="GET"),
    case("models-long-id", None, NO_SUCH_MODEL, "/v1/models/" + "m" * 4000, method="GET"),
    case("models-delete", None, WRONG_METHOD, "/v1/models/llama3.2", method="DELETE"),
    case("models-post", raw("{}"), WRONG_METHOD, "/v1/models"),
    case("chat-get", None, WRONG_METHOD, CHAT, method="GET"),
    case("completions-put", raw("{}"), WRONG_METHOD, COMPLETIONS, method="PUT"),
    case("v1-dot-dot", None, UNKNOWN_URL, "/v1/%2e%2e/api/delete", method="GET"),
    case("ollama-path", None, UNKNOWN_URL, "/api/tags", method="GET"),
    case("chat-dot-dot", raw("{}"), UNKNOWN_URL, "/v1/chat/completions/../../api/pull"),
    # --- Issue 17: never a redirect, a 500, or a value Ollama cannot read. ---
    # A redirect would take its Location from the Host header.
    case("models-double-slash", None, UNKNOWN_URL, "/v1//models", method="GET"),
    case("chat-double-slash", raw("{}"), UNKNOWN_URL, "/v1//chat/completions"),
    case(
        "tool-choice-function-list",
        chat(tools=[WEATHER], tool_choice={"type": "function", "function": ["get_weather"]}),
        bad("invalid_type", "tool_choice.function"),
    ),
    # NaN and Infinity anywhere: Ollama cannot read them (its JSON has no words for them).
    case(
        "options-nan",
        raw(json.dumps(chat(options={"temperature": math.nan}))),
        bad("invalid_type", "options.temperature"),
    ),
    case(
        "tool-parameters-infinity",
        raw(
            json.dumps(
                chat(
                    tools=[
                        {
                            **WEATHER,
                            "function": {
                                **WEATHER["function"],
                                "parameters": {"maximum": math.inf},
                            },
                        }
                    ]
                )
            )
        ),
        bad("invalid_type", "tools.[0].function.parameters.maximum"),
    ),
    case(
        "json-schema-nan",
        raw(
            json.dumps(
                chat(
                    response_format={
                        "type": "json_schema",
                        "json_schema": {"name": "x", "schema": {"minimum": math.nan}},
                    }
                )
            )
        ),
        bad("invalid_type", "response_format.json_schema.schema.minimum"),
    ),
    case(
        "tool-call-arguments-nan",
        chat(
            messages=[
                {"role": "user", "content": "Hi"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"x": NaN}'},
                        }
                    ],
                },
            ]
        ),
        bad("invalid_value", "messages.[1].tool_calls.[0].function.arguments"),
    ),
    # Parsed, then too deep for the JSON encoder further down the stack: a 500 at one of these.
    *(
        case(
            f"options-{depth}-deep",
            raw(json.dumps(chat())[:-1] + ', "options": {"x": ' + "[" * depth + "]" * depth + "}}"),
            NOT_JSON,
        )
        for depth in (900, 930, 960)
    ),
    # Tiny values cost a Python object each: refused before they are parsed.
    case(
        "json-bomb",
        raw('{"model": "llama3.2", "metadata": [' + "{}," * 400_000 + "{}]}"),
        (413, "request_too_large", None),
    ),
    case(
        "body-over-max-request-bytes",
        raw(" " * (4 * 1024 * 1024 + 1)),
        (413, "request_too_large", None),
    ),
]


@pytest.fixture(scope="module")
def session(secured_server):
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {SECURED_KEYS['bad-input']}"
        yield session


def send(session, url, method, body):
    if body is None:
        return session.request(method, url, timeout=30)
    if isinstance(body, tuple):
        data, content_type = body
        headers = {"Content-Type": content_type} if content_type else {}
        return session.request(method, url, data=data, headers=headers, timeout=30)
    return session.request(method, url, json=body, timeout=30)


@pytest.mark.parametrize(("method", "path", "body", "expected"), CASES)
def test_malformed_request_gets_a_4xx_envelope(
    secured_server, session, ollama, method, path, body, expected
):
    response = send(session, secured_server.url + path, method, body)
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (response.status_code, error["code"], error["param"]) == expected, error["message"]
    assert error["type"] == "invalid_request_error"
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.text
    assert {request.path for request in ollama.requests} <= OLLAMA_PATHS


def test_gateway_is_healthy_after_the_battery(secured_server, session, ollama):
    assert session.get(f"{secured_server.url}/health", timeout=10).json()["status"] == "healthy"
    answer = session.post(f"{secured_server.url}{CHAT}", json=chat(), timeout=10)
    assert answer.status_code == 200
    log = secured_server.log()
    assert "Traceback" not in log
    assert "unexpected error" not in log


# --- Answers Ollama would never send (a broken server, or something else at its address): a
# 502 envelope, or in a stream an error event, never a 500, a bare NaN or a stream that stops. ---
IMPOSTOR_LINES = [
    pytest.param(CHAT, {"message": "oops"}, id="message-string"),
    pytest.param(CHAT, {"message": {"role": "assistant", "content": 7}}, id="content-number"),
    pytest.param(
        CHAT, {"message": {"role": "assistant", "tool_calls": "call"}}, id="tool-calls-string"
    ),
    pytest.param(CHAT, {"eval_count": "12"}, id="eval-count-string"),
    pytest.param(CHAT, {"eval_count": math.nan}, id="eval-count-nan"),
    pytest.param(CHAT, {"prompt_eval_count": -3}, id="prompt-eval-count-negative"),
    pytest.param(CHAT, {"done": "yes"}, id="done-string"),
    pytest.param(CHAT, {"logprobs": [1, 2]}, id="logprobs-numbers"),
    pytest.param(COMPLETIONS, {"response": 5}, id="generate-response-number"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("path", "fields"), IMPOSTOR_LINES)
def test_an_answer_ollama_never_sends_is_a_502(
    secured_server, session, ollama, path, fields, stream
):
    ollama.done_fields = fields
    body = chat(stream=stream) if path == CHAT else completion(stream=stream)
    response = session.post(secured_server.url + path, json=body, timeout=30)
    if stream:
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line.startswith(b"data: ")]
        assert events[-1] != b"data: [DONE]"
        error = json.loads(events[-1][len(b"data: ") :])["error"]
    else:
        assert response.status_code == 502
        error = response.json()["error"]
    assert (error["type"], error["code"]) == ("server_error", "upstream_error")
    assert "NaN" not in response.text


# --- Requests gunicorn reads before the app does, and bodies the app cannot read whole. ---
def http_request(head, body=b"", key=SECURED_KEYS["bad-input"]):
    """A request written byte for byte: ``head`` is its request line and headers."""
    return head + f"Host: x\r\nAuthorization: Bearer {key}\r\n\r\n".encode() + body


def chunked(*pieces):
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


CHAT_HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nContent-Type: application/json\r\n"
CHUNKED_HEAD = CHAT_HEAD + b"Transfer-Encoding: chunked\r\n"
BODY = json.dumps(chat()).encode()
RAW_CASES = [
    pytest.param(b"GARBAGE\r\n\r\n", (400, "bad_request", None), id="request-line-garbage"),
    pytest.param(
        http_request(b"GET /v1/models?q=" + b"a" * 5000 + b" HTTP/1.1\r\n"),
        (414, "uri_too_long", None),
        id="url-too-long",
    ),
    pytest.param(
        http_request(b"GET /v1/models HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n"),
        (431, "request_header_fields_too_large", None),
        id="header-too-large",
    ),
    pytest.param(
        http_request(b"GET /v1/models HTTP/1.1\r\n" + b"X-A: b\r\n" * 101),
        (431, "request_header_fields_too_large", None),
        id="too-many-headers",
    ),
    pytest.param(
        http_request(CHUNKED_HEAD, b"zz\r\n" + BODY + b"\r\n0\r\n\r\n"),
        (400, "invalid_body", None),
        id="bad-chunk-size",
    ),
    pytest.param(
        http_request(CHUNKED_HEAD, chunked(BODY[:-1], b" " * (4 * 1024 * 1024), b"}")),
        (413, "request_too_large", None),
        id="chunked-over-max-request-bytes",
    ),
    pytest.param(
        http_request(CHAT_HEAD + b"Content-Length: 1000\r\n", BODY),
        (400, "invalid_body", None),
        id="body-shorter-than-its-length",
    ),
]


@pytest.mark.parametrize(("data", "expected"), RAW_CASES)
def test_a_request_read_byte_for_byte_gets_a_4xx_envelope(secured_server, ollama, data, expected):
    with socket.create_connection(("127.0.0.1", secured_server.port), timeout=30) as sock:
        sock.sendall(data)
        # The client is done: a body shorter than its Content-Length ends here.
        sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        response.begin()
        text = response.read()
    assert response.getheader("Content-Type") == "application/json"
    error = json.loads(text)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (response.status, error["code"], error["param"]) == expected, error["message"]
    assert error["type"] == "invalid_request_error"
    assert not ollama.requests
