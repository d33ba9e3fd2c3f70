"""A battery of malformed requests against the real stack (gunicorn, gevent, keys, limits).

Each must get a 4xx OpenAI envelope, never a 500 or a traceback; the gateway must stay healthy
and must never call Ollama anywhere but its known endpoints, whatever the model name says.
"""

import json

import pytest
import requests

from tests.conftest import SECURED_KEYS

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
# Ollama paths the gateway may call; a model name must never add another.
OLLAMA_PATHS = {"/api/version", "/api/tags", "/api/chat", "/api/generate", "/api/embed"}
EMBEDDINGS = "/v1/embeddings"
# Far deeper than Python's recursion limit, so a naive parser would crash on it.
DEEP = "[" * 100_000 + "]" * 100_000
DROP = object()


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


def case(method, path, body, status, case_id):
    return pytest.param(method, path, body, status, id=case_id)


CASES = [
    # --- Not JSON, or not a JSON object. ---
    case("POST", CHAT, raw("hello"), 400, "chat-not-json"),
    case("POST", CHAT, raw(""), 400, "chat-empty-body"),
    case("POST", CHAT, raw('{"model": "llama3.2", "messages": ['), 400, "chat-truncated"),
    case("POST", CHAT, raw("[]"), 400, "chat-array"),
    case("POST", CHAT, raw(json.dumps([chat()])), 400, "chat-array-of-bodies"),
    case("POST", CHAT, raw("42"), 400, "chat-number"),
    case("POST", CHAT, raw('"hello"'), 400, "chat-string"),
    case("POST", CHAT, raw("null"), 400, "chat-null"),
    case("POST", CHAT, raw("true"), 400, "chat-boolean"),
    case("POST", CHAT, raw(json.dumps(chat()), "text/plain"), 400, "chat-text-plain"),
    case("POST", CHAT, raw(json.dumps(chat()), None), 400, "chat-no-content-type"),
    case("POST", CHAT, raw("model=llama3.2", "application/x-www-form-urlencoded"), 400, "form"),
    case("POST", CHAT, raw(b'{"model": "\xff\xfe"}'), 400, "chat-invalid-utf8"),
    case("POST", CHAT, raw(DEEP), 400, "chat-deeply-nested-body"),
    case(
        "POST",
        CHAT,
        raw('{"model": "llama3.2", "messages": [{"role": "user", "content": ' + DEEP + "}]}"),
        400,
        "chat-deeply-nested-content",
    ),
    case("POST", CHAT, raw('{"model": "llama3.2", "model": 7}'), 400, "chat-duplicate-key"),
    case("POST", CHAT, raw(b"\x00\x01\x02\x03"), 400, "chat-binary"),
    # --- model: nulls, wrong types, path tricks (never part of an upstream URL). ---
    case("POST", CHAT, chat(model=DROP), 400, "model-missing"),
    case("POST", CHAT, chat(model=None), 400, "model-null"),
    case("POST", CHAT, chat(model=7), 400, "model-number"),
    case("POST", CHAT, chat(model=""), 400, "model-empty"),
    case("POST", CHAT, chat(model="   "), 400, "model-blank"),
    case("POST", CHAT, chat(model=["llama3.2"]), 400, "model-array"),
    case("POST", CHAT, chat(model={"$ne": None}), 400, "model-object"),
    case("POST", CHAT, chat(model="../../api/delete"), 404, "model-dot-dot"),
    case("POST", CHAT, chat(model="llama3.2/../../api/pull"), 404, "model-dot-dot-suffix"),
    case("POST", CHAT, chat(model="%2e%2e%2fapi%2fdelete"), 404, "model-percent-encoded"),
    case("POST", CHAT, chat(model="http://169.254.169.254/latest"), 404, "model-url"),
    case("POST", CHAT, chat(model="llama3.2?x=1#frag"), 404, "model-query"),
    case("POST", CHAT, chat(model="llama\u0000\u001b[31m"), 404, "model-control-chars"),
    case("POST", CHAT, chat(model="\ud800"), 400, "model-lone-surrogate"),
    case("POST", CHAT, chat(model="\u202emodel\u200b"), 404, "model-bidi"),
    case("POST", CHAT, chat(model="m" * 100_000), 404, "model-huge"),
    # --- messages. ---
    case("POST", CHAT, chat(messages=DROP), 400, "messages-missing"),
    case("POST", CHAT, chat(messages=None), 400, "messages-null"),
    case("POST", CHAT, chat(messages="Hi"), 400, "messages-string"),
    case("POST", CHAT, chat(messages=[]), 400, "messages-empty"),
    case("POST", CHAT, chat(messages=[None]), 400, "messages-null-entry"),
    case("POST", CHAT, chat(messages=[1, 2]), 400, "messages-numbers"),
    case("POST", CHAT, chat(messages={"role": "user"}), 400, "messages-object"),
    case("POST", CHAT, chat(messages=[{"role": "user"}] * 2049), 400, "messages-too-many"),
    case("POST", CHAT, message(role=DROP), 400, "role-missing"),
    case("POST", CHAT, message(role=None), 400, "role-null"),
    case("POST", CHAT, message(role="hacker"), 400, "role-unknown"),
    case("POST", CHAT, message(role="tool"), 400, "role-tool"),
    case("POST", CHAT, message(role="USER"), 400, "role-uppercase"),
    case("POST", CHAT, message(role=["user"]), 400, "role-array"),
    case("POST", CHAT, message(content=42), 400, "content-number"),
    case("POST", CHAT, message(content={"text": "x"}), 400, "content-object"),
    case("POST", CHAT, message(content=[None]), 400, "content-null-part"),
    case("POST", CHAT, message(content=[{"type": "evil"}]), 400, "content-unknown-part"),
    case("POST", CHAT, message(content=[{"type": "text", "text": 5}]), 400, "content-text-type"),
    case(
        "POST",
        CHAT,
        message(content=[{"type": "image_url", "image_url": {"url": "http://10.0.0.1/a.png"}}]),
        400,
        "image-remote-url",
    ),
    case(
        "POST",
        CHAT,
        message(content=[{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]),
        400,
        "image-file-url",
    ),
    case(
        "POST",
        CHAT,
        message(content=[{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]),
        400,
        "image-not-base64",
    ),
    case("POST", CHAT, message(content=[{"type": "image_url"}]), 400, "image-missing-url"),
    case("POST", CHAT, message(extra="x"), 400, "message-unknown-field"),
    # --- Numbers: negative, huge, not finite, wrong type. ---
    case("POST", CHAT, chat(temperature=-1), 400, "temperature-negative"),
    case("POST", CHAT, chat(temperature=1e308), 400, "temperature-huge"),
    case("POST", CHAT, chat(temperature="hot"), 400, "temperature-string"),
    case("POST", CHAT, raw('{"model": "llama3.2", "temperature": NaN}'), 400, "temperature-nan"),
    case("POST", CHAT, raw('{"model": "x", "temperature": Infinity}'), 400, "temperature-inf"),
    case("POST", CHAT, chat(top_p=True), 400, "top-p-boolean"),
    case("POST", CHAT, chat(max_tokens=-5), 400, "max-tokens-negative"),
    case("POST", CHAT, chat(max_tokens=0), 400, "max-tokens-zero"),
    case("POST", CHAT, chat(max_tokens=10**30), 400, "max-tokens-huge"),
    case("POST", CHAT, chat(max_tokens=1.5), 400, "max-tokens-fraction"),
    case("POST", CHAT, chat(max_completion_tokens="10"), 400, "max-completion-tokens-string"),
    case("POST", CHAT, chat(seed=2**64), 400, "seed-huge"),
    case("POST", CHAT, chat(seed=-(2**70)), 400, "seed-very-negative"),
    case("POST", CHAT, chat(n=-1), 400, "n-negative"),
    case("POST", CHAT, chat(n=10**9), 400, "n-huge"),
    case("POST", CHAT, chat(presence_penalty=-3), 400, "presence-penalty-low"),
    # --- Other fields. ---
    case("POST", CHAT, chat(stream="yes"), 400, "stream-string"),
    case("POST", CHAT, chat(stream_options={"include_usage": True}), 400, "stream-options-alone"),
    case("POST", CHAT, chat(stop=["a", "b", "c", "d", "e"]), 400, "stop-too-many"),
    case("POST", CHAT, chat(stop=[1, 2]), 400, "stop-numbers"),
    case("POST", CHAT, chat(response_format="json"), 400, "response-format-string"),
    case("POST", CHAT, chat(response_format={"type": "xml"}), 400, "response-format-unknown"),
    case("POST", CHAT, chat(reasoning_effort="maximum"), 400, "reasoning-effort-unknown"),
    case("POST", CHAT, chat(options="num_ctx=8192"), 400, "options-string"),
    case("POST", CHAT, chat(keep_alive=[1]), 400, "keep-alive-array"),
    case("POST", CHAT, chat(foo="bar"), 400, "unknown-field"),
    case("POST", CHAT, chat(**{"\u0000": 1}), 400, "unknown-field-control-char"),
    case("POST", CHAT, chat(**{"x" * 10_000: 1}), 400, "unknown-field-huge-name"),
    case("POST", CHAT, chat(logit_bias={"1": 100}), 400, "logit-bias"),
    case(
        "POST",
        CHAT,
        {
            "model": None,
            "messages": None,
            "temperature": None,
            "stream": None,
            "stop": None,
            "max_tokens": None,
        },
        400,
        "nulls-everywhere",
    ),
    # --- /v1/completions. ---
    case("POST", COMPLETIONS, raw("hello"), 400, "completion-not-json"),
    case("POST", COMPLETIONS, raw("[1, 2]"), 400, "completion-array"),
    case("POST", COMPLETIONS, raw("3.14"), 400, "completion-number"),
    case("POST", COMPLETIONS, raw(json.dumps(completion()), "text/html"), 400, "completion-html"),
    case("POST", COMPLETIONS, raw(DEEP), 400, "completion-deeply-nested"),
    case("POST", COMPLETIONS, completion(prompt=DROP), 400, "prompt-missing"),
    case("POST", COMPLETIONS, completion(prompt=None), 400, "prompt-null"),
    case("POST", COMPLETIONS, completion(prompt=42), 400, "prompt-number"),
    case("POST", COMPLETIONS, completion(prompt=[1, 2, 3]), 400, "prompt-tokens"),
    case("POST", COMPLETIONS, completion(prompt=[[1, 2]]), 400, "prompt-token-lists"),
    case("POST", COMPLETIONS, completion(prompt=["a"] * 9), 400, "prompts-above-max-n"),
    case("POST", COMPLETIONS, completion(prompt={"text": "x"}), 400, "prompt-object"),
    case("POST", COMPLETIONS, completion(best_of=5), 400, "best-of"),
    case("POST", COMPLETIONS, completion(echo="yes"), 400, "echo-string"),
    case("POST", COMPLETIONS, completion(suffix=5), 400, "suffix-number"),
    case("POST", COMPLETIONS, completion(logprobs=6), 400, "completion-logprobs-above-5"),
    case("POST", COMPLETIONS, completion(max_tokens=-1), 400, "completion-max-tokens"),
    case("POST", COMPLETIONS, completion(model=None, prompt=None), 400, "completion-nulls"),
    case("POST", COMPLETIONS, completion(model="../../api/delete"), 404, "completion-dot-dot"),
    case("POST", COMPLETIONS, completion(messages=[]), 400, "completion-chat-field"),
    # --- /v1/embeddings. ---
    case("POST", EMBEDDINGS, raw("hello"), 400, "embeddings-not-json"),
    case("POST", EMBEDDINGS, {"model": "nomic-embed-text"}, 400, "embeddings-no-input"),
    case("POST", EMBEDDINGS, {"model": "nomic-embed-text", "input": [1, 2]}, 400, "embed-tokens"),
    case("POST", EMBEDDINGS, {"model": "nomic-embed-text", "input": [""]}, 400, "embed-empty"),
    case("POST", EMBEDDINGS, {"model": "../../api/delete", "input": "x"}, 404, "embed-dot-dot"),
    # --- Models, unknown paths, wrong methods. ---
    case("GET", "/v1/models/%2e%2e%2f%2e%2e%2fapi%2fdelete", None, 404, "models-dot-dot"),
    case("GET", "/v1/models/..%2f..%2fapi%2fpull", None, 404, "models-dot-dot-mixed"),
    case("GET", "/v1/models/http%3A%2F%2Fevil.example%2F", None, 404, "models-url"),
    case("GET", "/v1/models/%00%0a", None, 404, "models-control-chars"),
    case("GET", "/v1/models/" + "m" * 4000, None, 404, "models-long-id"),
    case("DELETE", "/v1/models/llama3.2", None, 405, "models-delete"),
    case("POST", "/v1/models", raw("{}"), 405, "models-post"),
    case("GET", CHAT, None, 405, "chat-get"),
    case("PUT", COMPLETIONS, raw("{}"), 405, "completions-put"),
    case("GET", "/v1/%2e%2e/api/delete", None, 404, "v1-dot-dot"),
    case("GET", "/api/tags", None, 404, "ollama-path"),
    case("POST", "/v1/chat/completions/../../api/pull", raw("{}"), 404, "chat-dot-dot"),
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


def test_the_battery_is_large_enough():
    assert len(CASES) >= 60


@pytest.mark.parametrize(("method", "path", "body", "status"), CASES)
def test_malformed_request_gets_a_4xx_envelope(
    secured_server, session, ollama, method, path, body, status
):
    response = send(session, secured_server.url + path, method, body)
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] == "invalid_request_error"
    assert isinstance(error["code"], str)
    assert "Traceback" not in response.text
    assert {request.path for request in ollama.requests} <= OLLAMA_PATHS


def test_gateway_is_healthy_after_the_battery(secured_server, session, ollama):
    assert session.get(f"{secured_server.url}/health", timeout=10).json()["status"] == "healthy"
    answer = session.post(f"{secured_server.url}{CHAT}", json=chat(), timeout=10)
    assert answer.status_code == 200
    log = secured_server.log()
    assert "Traceback" not in log
    assert "unexpected error" not in log
