"""The Ollama stand-in speaks Ollama's wire format, and its fault knobs do what they say."""

import json
import math
import re
import socket
import threading
import time

import pytest
import requests

from ollama_standin import OllamaStandin, StandinServer, tokenize
from tests.conftest import eventually

# RFC 3339 as Go writes it: UTC, up to nine fraction digits with trailing zeros trimmed.
CREATED_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z$")
MODIFIED_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?[+-]\d\d:\d\d$")
COUNTERS = ("total_duration", "load_duration", "prompt_eval_count", "eval_count", "eval_duration")
HELLO = [{"role": "user", "content": "Why is the sky blue?"}]


@pytest.fixture(scope="module")
def server():
    with StandinServer() as running:
        yield running


@pytest.fixture
def ollama(server):
    """The stand-in, fresh for every test."""
    server.standin.reset()
    return server.standin


def post(server, path, payload, **kwargs):
    return requests.post(server.url + path, json=payload, timeout=5, **kwargs)


def chat(server, messages=HELLO, model="llama3.2", **fields):
    return post(server, "/api/chat", {"model": model, "messages": messages, **fields})


def open_chat(server, **fields):
    """A chat whose answer is read as it arrives."""
    payload = {"model": "llama3.2", "messages": HELLO, **fields}
    return requests.post(server.url + "/api/chat", json=payload, timeout=5, stream=True)


def ndjson(response):
    """The lines of a streamed answer, checking each is one JSON object ending in a newline."""
    assert response.headers["Content-Type"] == "application/x-ndjson"
    text = response.content.decode()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_root_says_ollama_is_running(server):
    response = requests.get(server.url + "/", timeout=5)
    assert (response.status_code, response.text) == (200, "Ollama is running")
    assert requests.head(server.url + "/", timeout=5).status_code == 200


def test_version(server):
    assert requests.get(server.url + "/api/version", timeout=5).json() == {"version": "0.22.1"}


def test_tags_lists_models_in_ollama_shape(server, ollama):
    models = requests.get(server.url + "/api/tags", timeout=5).json()["models"]
    assert [m["name"] for m in models] == [
        "llama3.2:latest",
        "qwen3:8b",
        "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
        "nomic-embed-text:latest",
    ]
    for model in models:
        assert set(model) == {"name", "model", "modified_at", "size", "digest", "details"}
        assert MODIFIED_AT.match(model["modified_at"])
        assert re.fullmatch(r"[0-9a-f]{64}", model["digest"])
        assert set(model["details"]) == {
            "parent_model",
            "format",
            "family",
            "families",
            "parameter_size",
            "quantization_level",
        }
    assert models[0]["modified_at"] == "2025-05-01T10:00:00.123456789-07:00"

    ollama.add_model("mistral:7b", capabilities=["completion"])
    assert requests.get(server.url + "/api/tags", timeout=5).json()["models"][0]["name"] == (
        "mistral:7b"
    )


@pytest.mark.parametrize(
    ("model", "capabilities", "context_key"),
    [
        ("llama3.2", ["completion", "tools"], "llama.context_length"),
        ("qwen3:8b", ["completion", "tools", "thinking"], "qwen3.context_length"),
        ("nomic-embed-text", ["embedding"], "nomic-bert.context_length"),
    ],
)
def test_show_reports_capabilities_and_context(server, ollama, model, capabilities, context_key):
    shown = post(server, "/api/show", {"model": model}).json()
    assert shown["capabilities"] == capabilities
    assert shown["model_info"][context_key] > 0
    assert {"details", "model_info", "capabilities", "modified_at"} <= set(shown)


def test_show_of_llama_has_its_context_length(server, ollama):
    shown = post(server, "/api/show", {"model": "llama3.2:latest"}).json()
    assert shown["model_info"]["llama.context_length"] == 131072


def test_show_unknown_model_is_404_with_latest_added(server, ollama):
    response = post(server, "/api/show", {"model": "nope"})
    assert (response.status_code, response.json()) == (
        404,
        {"error": "model 'nope:latest' not found"},
    )


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/api/chat", {"messages": HELLO}),
        ("/api/generate", {"prompt": "hi"}),
        ("/api/embed", {"input": "hi"}),
    ],
)
def test_unknown_model_is_404_named_as_sent(server, ollama, path, payload):
    response = post(server, path, {"model": "nope", **payload})
    assert response.status_code == 404
    assert response.json() == {"error": "model 'nope' not found"}
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate", "/api/embed", "/api/show"])
@pytest.mark.parametrize("model", [None, ""])
def test_missing_model_is_400(server, ollama, path, model):
    response = post(server, path, {"model": model, "prompt": "hi", "input": "hi"})
    assert (response.status_code, response.json()) == (400, {"error": "model is required"})


def test_untagged_name_means_latest(server, ollama):
    for name in ("llama3.2", "llama3.2:latest", "library/llama3.2", "LLAMA3.2"):
        response = chat(server, model=name, stream=False)
        assert response.status_code == 200
        assert response.json()["model"] == name


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "invalid character 'n' looking for beginning of value"),
        (b"", 400, "missing request body"),
        (b"[]", 400, "json: cannot unmarshal array into Go value of type api.ChatRequest"),
    ],
)
def test_bad_body_is_400(server, ollama, body, status, error):
    response = requests.post(server.url + "/api/chat", data=body, timeout=5)
    assert (response.status_code, response.json()) == (status, {"error": error})


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"role": "developer", "content": "hi"}, "invalid message format"),
        ({"role": "user", "content": [{"type": "text", "text": "hi"}]}, "json: cannot unmarshal"),
        ({"role": "user", "content": "hi", "images": ["data:image/png;base64,AAAA"]}, "illegal"),
    ],
)
def test_malformed_message_is_400(server, ollama, message, error):
    response = chat(server, messages=[message])
    assert response.status_code == 400
    assert response.json()["error"].startswith(error)


def test_wrong_option_type_is_500(server, ollama):
    response = chat(server, options={"num_predict": "ten"})
    assert response.status_code == 500
    assert response.json() == {"error": 'option "num_predict" must be of type integer'}


def test_chat_stream_is_ndjson_ending_with_done_line(server, ollama):
    response = chat(server)
    assert response.status_code == 200
    *pieces, done = ndjson(response)
    for line in pieces:
        assert set(line) == {"model", "created_at", "message", "done"}
        assert line["done"] is False and line["model"] == "llama3.2"
        assert line["message"]["role"] == "assistant"
        assert CREATED_AT.match(line["created_at"])
    assert done["done"] is True and done["done_reason"] == "stop"
    assert done["message"] == {"role": "assistant", "content": ""}
    assert all(isinstance(done[key], int) and done[key] > 0 for key in COUNTERS)
    assert done["eval_count"] == len(pieces)
    text = "".join(line["message"]["content"] for line in pieces)
    assert text == "Hello! You said: Why is the sky blue?" == ollama.replies[-1]
    assert [line["message"]["content"] for line in pieces[:4]] == ["Hello", "!", " You", " said"]
    assert ollama.completed_streams == 1
    recorded = ollama.last_request("/api/chat")
    assert (recorded.method, recorded.body["messages"]) == ("POST", HELLO)
    assert recorded.headers["Content-Type"] == "application/json"


def test_non_stream_chat_is_one_object_with_the_whole_message(server, ollama):
    response = chat(server, stream=False)
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    answer = response.json()
    assert answer["message"] == {"role": "assistant", "content": ollama.replies[-1]}
    assert answer["done"] is True and answer["done_reason"] == "stop"
    assert all(key in answer for key in COUNTERS)


def test_num_predict_stops_with_length(server, ollama):
    answer = chat(server, stream=False, options={"num_predict": 3}).json()
    assert answer["message"]["content"] == "Hello! You"
    assert (answer["done_reason"], answer["eval_count"]) == ("length", 3)


def test_stop_sequence_cuts_before_it(server, ollama):
    *pieces, done = ndjson(chat(server, options={"stop": [" said", "!"]}))
    assert "".join(line["message"]["content"] for line in pieces) == "Hello"
    assert done["done_reason"] == "stop"


# --- Context windows: one token per word plus 10 for the template, fitted to num_ctx. ---


def words(count, prefix="w"):
    return " ".join(f"{prefix}{i}" for i in range(count))


def conversation(*sizes):
    """A system message of 5 words, then user/assistant turns of the given sizes in words."""
    turns = [{"role": "system", "content": words(5, "s")}]
    for index, size in enumerate(sizes):
        turns.append({"role": "user" if index % 2 == 0 else "assistant", "content": words(size)})
    return turns


def test_prompt_tokens_are_words_plus_the_template(server, ollama):
    answer = chat(server, messages=conversation(20, 30, 40), stream=False).json()
    assert answer["prompt_eval_count"] == 5 + 20 + 30 + 40 + 10


def test_a_long_chat_is_cut_from_the_start_without_a_word_by_default(server, ollama):
    # 105 tokens in a window of 64: the oldest turns go, the system message and the last stay.
    options = {"num_ctx": 64}
    answer = chat(server, messages=conversation(20, 30, 40), options=options, stream=False)
    assert answer.status_code == 200
    assert answer.json()["prompt_eval_count"] == 5 + 40 + 10
    # A last message that alone does not fit is cut to the window.
    answer = chat(server, messages=conversation(100), options=options, stream=False).json()
    assert answer["prompt_eval_count"] == 64


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/api/chat", {"messages": conversation(20, 30, 40)}),
        ("/api/generate", {"prompt": words(60)}),
        ("/api/embed", {"model": "nomic-embed-text", "input": ["short", words(70)]}),
    ],
)
def test_truncate_false_refuses_what_does_not_fit_with_ollamas_400(server, ollama, path, payload):
    payload = {"model": "llama3.2", "options": {"num_ctx": 64}, **payload}
    response = post(server, path, {**payload, "truncate": False, "stream": False})
    assert (response.status_code, response.json()) == (
        400,
        {"error": "the input length exceeds the context length"},
    )
    assert post(server, path, {**payload, "stream": False}).status_code == 200


def test_num_ctx_above_the_models_maximum_is_lowered_to_it(server, ollama):
    chat(server, options={"num_ctx": 1_000_000}, stream=False)
    [loaded] = requests.get(server.url + "/api/ps", timeout=5).json()["models"]
    assert loaded["context_length"] == 131072


def test_a_modelfile_num_ctx_is_the_default_window_and_shown(server, ollama):
    ollama.add_model("long:8b", num_ctx=16384)
    shown = post(server, "/api/show", {"model": "long:8b"}).json()
    assert shown["parameters"].splitlines()[0].split() == ["num_ctx", "16384"]
    chat(server, model="long:8b", stream=False)
    chat(server, model="llama3.2", stream=False)
    loaded = requests.get(server.url + "/api/ps", timeout=5).json()["models"]
    assert {m["name"]: m["context_length"] for m in loaded} == {
        "long:8b": 16384,
        "llama3.2:latest": 4096,
    }


def test_shift_false_stops_the_generation_when_the_window_is_full(server, ollama):
    ollama.reply = words(30, "r")
    messages = [{"role": "user", "content": words(40)}]
    options = {"num_ctx": 60}
    stopped = chat(server, messages=messages, options=options, shift=False, stream=False).json()
    assert (stopped["done_reason"], stopped["eval_count"]) == ("length", 60 - 50)
    shifted = chat(server, messages=messages, options=options, stream=False).json()
    assert (shifted["done_reason"], shifted["eval_count"]) == ("stop", 30)


def test_cached_prompt_tokens_are_reported_when_the_knob_says(server, ollama):
    assert "prompt_eval_cached_count" not in chat(server, stream=False).json()
    ollama.cached_prompt_tokens = 12
    *_, done = ndjson(chat(server))
    assert (done["prompt_eval_cached_count"], done["prompt_eval_count"]) == (12, 5 + 10)


def test_reply_knob_sets_the_answer(server, ollama):
    ollama.reply = "Blue, because of Rayleigh scattering."
    assert chat(server, stream=False).json()["message"]["content"] == ollama.reply


def test_done_fields_knob_changes_the_final_line_only(server, ollama):
    ollama.done_fields = {"eval_count": "12", "padding": "x" * 100}
    *pieces, done = ndjson(chat(server))
    assert (done["eval_count"], done["padding"]) == ("12", "x" * 100)
    assert all("padding" not in line for line in pieces)
    assert chat(server, stream=False).json()["eval_count"] == "12"


def test_thinking_model_thinks_first_and_others_refuse_to(server, ollama):
    *pieces, _ = ndjson(chat(server, model="qwen3:8b"))
    kinds = ["thinking" if line["message"].get("thinking") else "content" for line in pieces]
    assert kinds == sorted(kinds, reverse=True) and kinds[0] == "thinking"
    assert (
        "thinking"
        not in chat(server, model="qwen3:8b", think=False, stream=False).json()["message"]
    )
    response = chat(server, think=True)
    assert (response.status_code, response.json()) == (
        400,
        {"error": '"llama3.2" does not support thinking'},
    )


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
def test_think_takes_the_levels_of_a_recent_ollama_and_refuses_others(server, ollama, path):
    ask = {"messages": HELLO} if path == "/api/chat" else {"prompt": "Why?"}
    for level in ("low", "medium", "high", "max"):
        answer = post(server, path, {"model": "qwen3:8b", **ask, "think": level, "stream": False})
        assert answer.status_code == 200, level
        thinking = answer.json()["message"] if path == "/api/chat" else answer.json()
        assert thinking.get("thinking"), level
    response = post(server, path, {"model": "qwen3:8b", **ask, "think": "maximum"})
    levels = '"high", "medium", "low", "max", true, or false'
    assert (response.status_code, response.json()) == (
        400,
        {"error": f'invalid think value: "maximum" (must be {levels})'},
    )


def test_tool_calls_arrive_whole_in_one_line(server, ollama):
    ollama.tool_calls = [{"name": "get_weather", "arguments": {"city": "Tokyo"}}]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    *lines, done = ndjson(chat(server, tools=tools))
    (call,) = lines[-1]["message"]["tool_calls"]
    assert re.fullmatch(r"call_[a-z0-9]{8}", call["id"])
    assert call["function"] == {"index": 0, "name": "get_weather", "arguments": {"city": "Tokyo"}}
    assert done["done_reason"] == "stop"
    response = chat(server, model="hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", tools=tools)
    assert response.status_code == 400


def test_generate_streams_responses_and_context_on_the_last_line(server, ollama):
    response = post(server, "/api/generate", {"model": "llama3.2", "prompt": "The sky is"})
    *pieces, done = ndjson(response)
    assert "".join(line["response"] for line in pieces) == "Completion of: The sky is"
    assert "context" not in pieces[0]
    assert done["response"] == "" and done["done_reason"] == "stop"
    assert done["context"] and all(isinstance(token, int) for token in done["context"])


@pytest.mark.parametrize("payload", [{}, {"prompt": ""}])
def test_generate_without_prompt_loads_the_model(server, ollama, payload):
    answer = post(server, "/api/generate", {"model": "llama3.2", **payload}).json()
    assert set(answer) == {"model", "created_at", "response", "done", "done_reason"}
    assert (answer["response"], answer["done"], answer["done_reason"]) == ("", True, "load")
    loaded = requests.get(server.url + "/api/ps", timeout=5).json()["models"]
    assert [m["name"] for m in loaded] == ["llama3.2:latest"]


def test_embed_vectors_are_unit_length_and_honour_dimensions(server, ollama):
    payload = {"model": "nomic-embed-text", "input": ["a cat", "a dog"], "dimensions": 4}
    answer = post(server, "/api/embed", payload).json()
    assert set(answer) == {
        "model",
        "embeddings",
        "total_duration",
        "load_duration",
        "prompt_eval_count",
    }
    assert [len(vector) for vector in answer["embeddings"]] == [4, 4]
    for vector in answer["embeddings"]:
        assert math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-5)
    assert answer == post(server, "/api/embed", payload).json() | {
        key: answer[key] for key in ("total_duration", "load_duration")
    }
    single = post(server, "/api/embed", {"model": "nomic-embed-text", "input": "a cat"}).json()
    (full,) = single["embeddings"]
    assert len(full) == 768
    norm = math.sqrt(math.fsum(v * v for v in full[:4]))
    truncated = answer["embeddings"][0]
    assert all(
        math.isclose(a, b / norm, rel_tol=1e-4) for a, b in zip(truncated, full[:4], strict=True)
    )


@pytest.mark.parametrize("bad_input", [42, ["ok", 7], {"text": "hi"}])
def test_embed_of_non_strings_is_400(server, ollama, bad_input):
    response = post(server, "/api/embed", {"model": "nomic-embed-text", "input": bad_input})
    assert (response.status_code, response.json()) == (400, {"error": "invalid input type"})


@pytest.mark.parametrize(
    ("status", "error", "body"),
    [
        (503, "server busy, please try again.  maximum pending requests exceeded", None),
        (500, "llama runner process has terminated: exit status 2", None),
        (403, None, b""),
    ],
)
def test_fail_status_answers_every_model_endpoint(server, ollama, status, error, body):
    ollama.configure(fail_status=status, fail_error=error)
    for path in ("/api/chat", "/api/generate", "/api/embed", "/api/show"):
        response = post(server, path, {"model": "llama3.2", "messages": HELLO, "prompt": "x"})
        assert response.status_code == status
        if body is None:
            assert response.json() == {"error": error}
        else:
            assert response.content == body
    assert requests.get(server.url + "/api/tags", timeout=5).status_code == 200


def test_error_after_tokens_sends_an_error_line_with_status_200(server, ollama):
    ollama.error_after_tokens = 2
    response = chat(server)
    assert response.status_code == 200
    *pieces, error = ndjson(response)
    assert [line["message"]["content"] for line in pieces] == ["Hello", "!"]
    assert error == {"error": "llama runner process has terminated: exit status 2"}
    non_stream = chat(server, stream=False)
    assert non_stream.status_code == 500


def test_drop_after_tokens_ends_the_connection_without_a_done_line(server, ollama):
    ollama.drop_after_tokens = 2
    lines = []
    # A closed socket mid-chunk surfaces as either, depending on FIN or RST.
    broken = (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)
    with open_chat(server) as response, pytest.raises(broken):
        for line in response.iter_lines():
            lines.append(json.loads(line))
    assert [line["done"] for line in lines] == [False, False]
    assert ollama.replies == ["Hello!"]


def test_garbage_after_tokens_sends_a_line_that_is_not_json(server, ollama):
    ollama.garbage_after_tokens = 1
    first, garbage = chat(server).content.decode().splitlines()
    assert json.loads(first)["message"]["content"] == "Hello"
    with pytest.raises(ValueError):
        json.loads(garbage)


def test_delay_first_byte_holds_the_status_line(server, ollama):
    ollama.delay_first_byte = 0.3
    started = time.monotonic()
    with open_chat(server) as response:
        assert time.monotonic() - started >= 0.3
        assert response.status_code == 200


def test_token_interval_spaces_the_lines(server, ollama):
    ollama.token_interval = 0.02
    started = time.monotonic()
    *pieces, _ = ndjson(chat(server))
    assert time.monotonic() - started >= 0.02 * len(pieces)


def test_http_control_endpoints(server, ollama):
    knobs = post(server, "/_standin/config", {"token_interval": 0.01, "reply": "ok"}).json()
    assert (knobs["token_interval"], knobs["reply"]) == (0.01, "ok")
    assert (ollama.token_interval, ollama.reply) == (0.01, "ok")
    assert post(server, "/_standin/config", {"nope": 1}).status_code == 400
    assert post(server, "/_standin/config", {"fail_status": "503"}).status_code == 400
    chat(server)
    state = requests.get(server.url + "/_standin/state", timeout=5).json()
    assert (state["requests"], state["completed_streams"], state["disconnects"]) == (1, 1, 0)
    reset = post(server, "/_standin/reset", {}).json()
    assert (reset["requests"], reset["knobs"]["reply"]) == (0, None)
    assert ollama.requests == []


def test_knob_set_by_assignment_is_used_and_reset(server, ollama):
    ollama.delay_first_byte = 0  # an int is a number of seconds too
    ollama.tool_calls = [{"name": "get_weather"}]
    ollama.reply = "Blue."
    assert ollama.knobs()["reply"] == "Blue." == ollama.state()["knobs"]["reply"]
    assert chat(server, stream=False).json()["message"]["content"] == "Blue."
    ollama.reset()
    assert (ollama.delay_first_byte, ollama.tool_calls, ollama.reply) == (0.0, None, None)


def test_misspelt_knob_raises_instead_of_doing_nothing(ollama):
    with pytest.raises(AttributeError, match="'replay'"):
        ollama.replay = "x"
    with pytest.raises(ValueError, match="unknown knob 'replay'"):
        ollama.configure(replay="x")
    with pytest.raises(ValueError, match="unknown knob 'replay'"):
        OllamaStandin(replay="x")


@pytest.mark.parametrize(
    ("knob", "value", "error"),
    [
        ("reply", 42, "knob 'reply' cannot be 42"),
        ("delay_first_byte", "3", "knob 'delay_first_byte' cannot be '3'"),
        ("fail_status", True, "knob 'fail_status' cannot be True"),
        ("tool_calls_without_ids", 1, "knob 'tool_calls_without_ids' cannot be 1"),
        ("tool_calls", [{"arguments": {}}], "tool call {'arguments': {}} needs a name"),
    ],
)
def test_knob_of_the_wrong_type_raises_and_keeps_its_value(ollama, knob, value, error):
    before = getattr(ollama, knob)
    with pytest.raises(ValueError, match=re.escape(error)):
        setattr(ollama, knob, value)
    assert getattr(ollama, knob) == before


# A hang-up is noticed while waiting for the next token, not only when a write fails.
@pytest.mark.parametrize(("interval", "within"), [(0.05, 1.0), (2.0, 0.5)])
def test_client_hang_up_is_recorded_promptly(server, ollama, interval, within):
    ollama.token_interval = interval
    body = json.dumps({"model": "llama3.2", "messages": HELLO}).encode()
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as client:
        client.sendall(
            b"POST /api/chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        with client.makefile("rb") as reader:
            while reader.readline() != b"\r\n":  # status line and headers
                pass
            reader.readline()  # chunk size
            assert json.loads(reader.readline())["done"] is False
        left = time.monotonic()
    disconnects = eventually(lambda: ollama.disconnects)
    assert disconnects and disconnects[0] - left < within
    assert ollama.completed_streams == 0


def test_unknown_path_and_wrong_method_answer_like_gin(server, ollama):
    missing = requests.get(server.url + "/api/nope", timeout=5)
    assert (missing.status_code, missing.text) == (404, "404 page not found")
    assert missing.headers["Content-Type"].startswith("text/plain")
    wrong = requests.get(server.url + "/api/chat", timeout=5)
    assert (wrong.status_code, wrong.text) == (405, "405 method not allowed")


def test_stop_hangs_up_open_streams_promptly():
    standin = OllamaStandin(token_interval=5.0)
    errors = []

    def listen():
        try:
            with open_chat(server_) as response:
                for _ in response.iter_lines():
                    pass
        except requests.RequestException as exc:
            errors.append(exc)

    server_ = StandinServer(standin)
    client = threading.Thread(target=listen)
    client.start()
    # Stopped while the stream is open: stopped before, the client would fail to connect.
    assert eventually(lambda: standin.state()["active_streams"]) == 1
    started = time.monotonic()
    server_.stop()
    client.join(timeout=2)
    assert time.monotonic() - started < 1 and not client.is_alive()
    assert len(errors) == 1


def test_tokenize_gives_the_text_back():
    text = "Hello! You said:  tabs\tand\nnewlines, émoji 🎉 <tags> & more.  "
    assert "".join(tokenize(text)) == text
    assert tokenize("Hello! You said") == ["Hello", "!", " You", " said"]


# --- Ollama's scheduler: slots, the queue, load times, evictions. ---


def test_a_second_request_waits_for_the_slot_of_the_first(server, ollama):
    ollama.configure(num_parallel=1, token_interval=0.3, reply="one two three")
    with open_chat(server) as first:
        # The iterator is kept: one dropped closes the connection.
        lines = first.iter_lines()
        next(lines)
        started = time.monotonic()
        second = chat(server, stream=False)
        # It ran once the first had sent its whole answer (three tokens 0.3 s apart).
        assert time.monotonic() - started >= 0.4
        assert [json.loads(line)["done"] for line in lines][-1]
    assert second.json()["done"]
    assert ollama.state()["peak_running"] == 1


def test_a_full_queue_answers_ollamas_503_busy(server, ollama):
    ollama.configure(num_parallel=1, max_queue=1, token_interval=0.5, reply="one two three")
    with open_chat(server) as first:
        # The iterator is kept: one dropped closes the connection.
        lines = first.iter_lines()
        next(lines)
        waiting = threading.Thread(target=chat, args=(server,), kwargs={"stream": False})
        waiting.start()
        eventually(lambda: ollama.state()["waiting"] == 1)
        refused = chat(server, stream=False)
        assert refused.status_code == 503
        assert refused.json() == {
            "error": "server busy, please try again.  maximum pending requests exceeded"
        }
    waiting.join(10)


def test_a_model_not_loaded_takes_the_load_time_once(server, ollama):
    ollama.load_seconds = 0.5
    started = time.monotonic()
    assert chat(server, stream=False).status_code == 200
    assert time.monotonic() - started >= 0.5
    assert [m["name"] for m in post_ps(server)] == ["llama3.2:latest"]
    started = time.monotonic()
    chat(server, stream=False)
    assert time.monotonic() - started < 0.5
    assert ollama.loads == 1


def test_loading_past_max_loaded_models_evicts_the_least_recently_used(server, ollama):
    ollama.configure(max_loaded_models=2, load_seconds=0.05)
    ollama.add_model("alpha")
    ollama.add_model("beta")
    for model in ("llama3.2", "alpha", "llama3.2", "beta"):
        assert chat(server, model=model, stream=False).status_code == 200
    assert sorted(m["name"] for m in post_ps(server)) == ["beta:latest", "llama3.2:latest"]
    assert ollama.state()["loaded"] == ["beta:latest", "llama3.2:latest"]
    assert ollama.loads == 3


def test_a_load_waits_while_every_loaded_model_is_busy(server, ollama):
    ollama.configure(max_loaded_models=1, token_interval=0.3, reply="one two three")
    ollama.add_model("alpha")
    with open_chat(server) as first:
        # The iterator is kept: one dropped closes the connection.
        lines = first.iter_lines()
        next(lines)
        started = time.monotonic()
        assert chat(server, model="alpha", stream=False).status_code == 200
        assert time.monotonic() - started >= 0.4
    assert [m["name"] for m in post_ps(server)] == ["alpha:latest"]


def post_ps(server):
    return requests.get(server.url + "/api/ps", timeout=5).json()["models"]
