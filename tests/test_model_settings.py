"""What a request gets from its model's settings: the one precedence (the request, then the
models file's entry, then the global defaults), the operator's policy (refuse or clamp), and the
capability checks; first as pure rules, then through the official SDK against a gateway with a
models file."""

import textwrap

import openai
import pytest

from ollama_openai import schemas
from ollama_openai.errors import ApiError
from ollama_openai.models_file import ModelEntry, Policy
from ollama_openai.translate import chat, completions, embeddings, responses
from ollama_openai.translate.options import SamplingDefaults

GLOBAL = SamplingDefaults(temperature=0.7, max_tokens=1000, truncate=False)
ENTRY = ModelEntry(
    options={"num_ctx": 16384, "top_k": 20},
    keep_alive="30m",
    think=True,
    temperature=0.2,
    context_overflow="truncate",
)
HELLO = [{"role": "user", "content": "hi"}]


def chat_payload(defaults, **fields):
    return chat.chat_request_to_ollama({"model": "m", "messages": HELLO, **fields}, defaults)


# --- The precedence: request > model entry > global defaults. ---


def test_the_model_entry_fills_what_the_request_leaves_unset():
    payload = chat_payload(GLOBAL.for_model(ENTRY, Policy()))
    assert payload["options"] == {
        "num_ctx": 16384,
        "top_k": 20,
        "temperature": 0.2,
        "num_predict": 1000,
    }
    assert (payload["keep_alive"], payload["think"], payload["truncate"]) == ("30m", True, True)
    assert "shift" not in payload


def test_the_requests_own_fields_and_extras_win():
    payload = chat_payload(
        GLOBAL.for_model(ENTRY, Policy()),
        temperature=1.0,
        max_tokens=5,
        options={"num_ctx": 4096},
        keep_alive="1m",
        reasoning_effort="none",
        truncate=False,
    )
    assert payload["options"] == {
        "num_ctx": 4096,
        "top_k": 20,
        "temperature": 1.0,
        "num_predict": 5,
    }
    assert (payload["keep_alive"], payload["think"]) == ("1m", False)
    assert (payload["truncate"], payload["shift"]) == (False, False)


def test_without_an_entry_the_global_defaults_apply():
    payload = chat_payload(GLOBAL.for_model(ModelEntry(), Policy()))
    assert payload["options"] == {"temperature": 0.7, "num_predict": 1000}
    # CONTEXT_OVERFLOW=error: Ollama refuses what does not fit, and stops at a full window.
    assert (payload["truncate"], payload["shift"]) == (False, False)
    assert "keep_alive" not in payload and "think" not in payload


def test_a_token_limit_cap_lowers_the_default_and_is_sent_when_none_applies():
    capped = Policy(max_num_predict=300)
    assert GLOBAL.for_model(ModelEntry(), capped).max_tokens == 300
    assert SamplingDefaults().for_model(ModelEntry(), capped).max_tokens == 300
    assert GLOBAL.for_model(ModelEntry(max_tokens=200), capped).max_tokens == 200


def test_every_endpoint_takes_the_same_precedence():
    defaults = GLOBAL.for_model(ENTRY, Policy())
    [completion] = completions.completion_requests_to_ollama(
        {"model": "m", "prompt": "x", "keep_alive": "2m"}, defaults
    )
    assert (completion["options"]["num_ctx"], completion["keep_alive"]) == (16384, "2m")
    embedding = embeddings.embedding_request_to_ollama(
        {"model": "m", "input": "x", "truncate": False}, "m", defaults
    )
    assert embedding["options"]["num_ctx"] == 16384
    assert (embedding["keep_alive"], embedding["truncate"]) == ("30m", False)
    assert "shift" not in embedding and "think" not in embedding
    plan = responses.plan({"model": "m", "input": "x"}, [], defaults, "m")
    assert plan.payloads[0]["options"]["num_ctx"] == 16384
    assert plan.settings["truncation"] == "auto"


@pytest.mark.parametrize(
    ("truncation", "truncate", "shift", "echoed"),
    [("auto", True, None, "auto"), ("disabled", False, False, "disabled")],
)
def test_responses_truncation_asks_ollama_to_cut_or_to_refuse(truncation, truncate, shift, echoed):
    plan = responses.plan({"model": "m", "input": "x", "truncation": truncation}, [], GLOBAL, "m")
    payload = plan.payloads[0]
    assert (payload["truncate"], payload.get("shift")) == (truncate, shift)
    assert plan.settings["truncation"] == echoed


# --- The policy. ---

POLICY = Policy(
    client_options=frozenset({"temperature", "num_ctx", "num_predict"}),
    max_num_ctx=8192,
    max_num_predict=500,
    min_keep_alive=60.0,
    max_keep_alive=3600.0,
)
CLAMP = Policy(
    max_num_ctx=8192, max_num_predict=500, min_keep_alive=60.0, max_keep_alive=3600.0,
    over_limit="clamp",
)  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"options": {"num_gpu": 0}}, "options.num_gpu"),
        ({"options": {"num_ctx": 1048576}}, "options.num_ctx"),
        ({"options": {"num_ctx": "big"}}, "options.num_ctx"),
        ({"options": {"num_predict": -1}}, "options.num_predict"),
        ({"max_tokens": 501}, "max_tokens"),
        ({"max_completion_tokens": 2**63 - 1}, "max_completion_tokens"),
        ({"max_output_tokens": 1000}, "max_output_tokens"),
        ({"keep_alive": -1}, "keep_alive"),
        ({"keep_alive": "2h"}, "keep_alive"),
        ({"keep_alive": 0}, "keep_alive"),
        ({"keep_alive": "soon"}, "keep_alive"),
    ],
)
def test_what_the_policy_forbids_is_a_400_naming_the_field(fields, param):
    with pytest.raises(ApiError) as caught:
        schemas.apply_policy({"model": "gpt-4o", **fields}, POLICY)
    assert (caught.value.status, caught.value.param) == (400, param)


def test_a_refusal_names_the_model_and_the_cap():
    with pytest.raises(ApiError) as caught:
        schemas.apply_policy({"model": "gpt-4o", "max_tokens": 501}, POLICY)
    assert caught.value.message == (
        "max_tokens is 501, above the most this gateway allows for the model 'gpt-4o': 500."
    )


def test_what_the_policy_allows_passes_unchanged():
    body = {"model": "m", "max_tokens": 500, "options": {"num_ctx": 8192}, "keep_alive": "30m"}
    assert schemas.apply_policy(body, POLICY) == (body, [])


def test_clamping_brings_each_value_to_its_bound_and_says_so():
    body = {
        "model": "m",
        "max_tokens": 100000,
        "options": {"num_ctx": 1048576, "num_predict": -1},
        "keep_alive": -1,
    }
    clamped, changes = schemas.apply_policy(body, CLAMP)
    assert clamped["max_tokens"] == 500
    assert clamped["options"] == {"num_ctx": 8192, "num_predict": 500}
    assert clamped["keep_alive"] == 3600
    assert changes == ["options.num_ctx=8192", "options.num_predict=500", "max_tokens=500",
                       "keep_alive=3600"]  # fmt: skip
    assert body["max_tokens"] == 100000  # the client's body is not changed behind its back
    assert schemas.apply_policy({"model": "m", "keep_alive": 0}, CLAMP)[0]["keep_alive"] == 60


# --- Capabilities. ---

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
TOOL = {"type": "function", "function": {"name": "f", "parameters": {}}}


@pytest.mark.parametrize(
    ("endpoint", "body", "needed"),
    [
        ("chat", {"messages": HELLO}, {}),
        (
            "chat",
            {"messages": [*HELLO, {"role": "user", "content": [{"type": "text"}, IMAGE]}]},
            {"vision": "messages.[1].content.[1]"},
        ),
        ("chat", {"messages": HELLO, "tools": [TOOL]}, {"tools": "tools"}),
        ("chat", {"messages": HELLO, "tools": [TOOL], "tool_choice": "none"}, {}),
        ("chat", {"messages": HELLO, "reasoning_effort": "low"}, {"thinking": "reasoning_effort"}),
        ("chat", {"messages": HELLO, "reasoning_effort": "none", "think": False}, {}),
        ("completions", {"prompt": "x", "suffix": "y"}, {"insert": "suffix"}),
        ("completions", {"prompt": "x", "think": "high"}, {"thinking": "think"}),
        (
            "responses",
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            {"vision": "input.[0].content.[0]"},
        ),
        ("responses", {"input": "x", "tools": [{"type": "web_search"}]}, {}),
        (
            "responses",
            {"input": "x", "reasoning": {"effort": "high"}},
            {"thinking": "reasoning.effort"},
        ),
        ("embeddings", {"input": "x"}, {"embedding": "model"}),
    ],
)
def test_a_request_needs_the_capabilities_of_what_it_asks(endpoint, body, needed):
    assert schemas.needed_capabilities(body, endpoint) == needed


def test_a_missing_capability_is_a_400_naming_the_field():
    with pytest.raises(ApiError) as caught:
        schemas.check_capabilities({"tools": "tools"}, ("completion",), "tiny")
    assert (caught.value.status, caught.value.param, caught.value.code) == (
        400,
        "tools",
        "unsupported_parameter",
    )
    assert "'tiny' does not support tools" in caught.value.message
    # Unknown capabilities (an older Ollama) leave the check to Ollama.
    schemas.check_capabilities({"tools": "tools"}, None, "tiny")


# --- End to end, with a models file. ---

MODELS_FILE = """
[policy]
max_num_ctx = 65536
max_num_predict = 2000
max_keep_alive = "1h"

[models."qwen3:8b"]
options = { num_ctx = 16384 }
keep_alive = "30m"

[models."llama3.2".policy]
over_limit = "clamp"
max_num_ctx = 8192

[aliases.gpt-4o]
model = "qwen3:8b"
options = { num_ctx = 32768 }

[aliases.gpt-4o-mini]
model = "qwen3:8b"
options = { num_ctx = 8192 }

[aliases.strict]
model = "llama3.2"
[aliases.strict.policy]
client_options = ["temperature"]
max_num_predict = 300
over_limit = "reject"
"""


@pytest.fixture(scope="module")
def configured_gateway(gateway_factory, ollama_url, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "models.toml"
    path.write_text(textwrap.dedent(MODELS_FILE))
    return gateway_factory(
        ollama_url, MODELS_FILE=str(path), MODEL_ALIASES="gpt-3.5-turbo=llama3.2"
    )


@pytest.fixture
def client(configured_gateway, ollama):
    with openai.OpenAI(
        base_url=f"{configured_gateway.url}/v1", api_key="k", max_retries=0
    ) as client:
        yield client


def sent(ollama, path="/api/chat"):
    return ollama.last_request(path).body


def test_a_model_entrys_num_ctx_and_keep_alive_reach_ollama(client, ollama):
    client.chat.completions.create(model="qwen3:8b", messages=HELLO)
    assert sent(ollama)["options"]["num_ctx"] == 16384
    assert sent(ollama)["keep_alive"] == "30m"


def test_the_requests_own_value_wins(client, ollama):
    client.chat.completions.create(
        model="qwen3:8b",
        messages=HELLO,
        extra_body={"options": {"num_ctx": 4096}, "keep_alive": "5m"},
    )
    assert (sent(ollama)["options"]["num_ctx"], sent(ollama)["keep_alive"]) == (4096, "5m")


@pytest.mark.parametrize(("alias", "num_ctx"), [("gpt-4o", 32768), ("gpt-4o-mini", 8192)])
def test_an_alias_runs_its_model_with_its_own_settings(client, ollama, alias, num_ctx):
    answer = client.chat.completions.create(model=alias, messages=HELLO)
    assert answer.model == alias
    assert sent(ollama)["model"] == "qwen3:8b"
    assert sent(ollama)["options"]["num_ctx"] == num_ctx
    # The model's own entry still applies where the alias says nothing.
    assert sent(ollama)["keep_alive"] == "30m"
    client.responses.create(model=alias, input="hi")
    assert sent(ollama)["options"]["num_ctx"] == num_ctx


def test_model_aliases_and_the_files_aliases_are_listed(client, ollama):
    listed = {model.id: model for model in client.models.list().data}
    assert {"gpt-4o", "gpt-4o-mini", "strict", "gpt-3.5-turbo"} <= set(listed)
    assert (listed["gpt-4o"].context_length, listed["gpt-4o-mini"].context_length) == (32768, 8192)
    assert listed["qwen3:8b"].context_length == 16384
    assert listed["gpt-4o"].max_context_length == 40960


def test_over_a_cap_is_a_400_naming_the_field(client, ollama):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="qwen3:8b", messages=HELLO, max_tokens=5000)
    assert (caught.value.body["param"], caught.value.body["code"]) == (
        "max_tokens",
        "invalid_value",
    )
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-4o", input="hi", extra_body={"keep_alive": -1})
    assert caught.value.body["param"] == "keep_alive"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="strict", messages=HELLO, extra_body={"options": {"num_gpu": 0}}
        )
    assert caught.value.body["param"] == "options.num_gpu"
    assert ollama.last_request("/api/chat") is None


def test_clamping_is_told_in_a_header_and_logged(client, configured_gateway, ollama):
    raw = client.chat.completions.with_raw_response.create(
        model="llama3.2",
        messages=HELLO,
        max_tokens=100000,
        extra_body={"options": {"num_ctx": 1048576}},
        extra_headers={"X-Request-ID": "clamped-request"},
    )
    assert raw.headers["x-ollama-openai-clamped"] == "options.num_ctx=8192, max_tokens=2000"
    assert raw.parse().choices[0].message.content
    assert sent(ollama)["options"]["num_ctx"] == 8192
    assert sent(ollama)["options"]["num_predict"] == 2000
    log = configured_gateway.log()
    assert "request_id=clamped-request model=llama3.2 clamped by the models file's policy" in log
    # A request within the caps is not marked.
    plain = client.chat.completions.with_raw_response.create(model="llama3.2", messages=HELLO)
    assert "x-ollama-openai-clamped" not in plain.headers


def test_a_cap_also_bounds_the_limit_a_request_leaves_unset(client, ollama):
    client.chat.completions.create(model="qwen3:8b", messages=HELLO)
    assert sent(ollama)["options"]["num_predict"] == 1000  # DEFAULT_MAX_TOKENS, under the cap
    client.completions.create(model="strict", prompt="x")
    assert sent(ollama, "/api/generate")["options"]["num_predict"] == 300  # the alias's cap


@pytest.mark.parametrize(
    ("call", "param", "capability"),
    [
        (
            lambda c: c.chat.completions.create(
                model="hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
                messages=HELLO,
                tools=[TOOL],
            ),
            "tools",
            "tools",
        ),
        (
            lambda c: c.chat.completions.create(
                model="llama3.2", messages=[{"role": "user", "content": [IMAGE]}]
            ),
            "messages.[0].content.[0]",
            "vision",
        ),
        (
            lambda c: c.chat.completions.create(
                model="gpt-3.5-turbo", messages=HELLO, reasoning_effort="high", stream=True
            ),
            "reasoning_effort",
            "thinking",
        ),
        (
            lambda c: c.completions.create(model="llama3.2", prompt="a", suffix="b"),
            "suffix",
            "insert",
        ),
        (lambda c: c.embeddings.create(model="llama3.2", input="x"), "model", "embedding"),
    ],
    ids=["tools", "vision", "thinking", "insert", "embedding"],
)
def test_a_request_the_model_cannot_serve_fails_fast(client, ollama, call, param, capability):
    with pytest.raises(openai.BadRequestError) as caught:
        call(client)
    assert caught.value.body["param"] == param
    assert f"does not support {capability}" in caught.value.body["message"]
    assert {request.path for request in ollama.requests} <= {"/api/show"}


def test_capabilities_are_read_once_not_per_request(client, ollama):
    ollama.add_model("once:1b", capabilities=["completion", "tools"])
    for _ in range(3):
        client.chat.completions.create(model="once:1b", messages=HELLO, tools=[TOOL])
    shows = [r for r in ollama.requests if r.path == "/api/show"]
    # One per gateway worker at most (the test gateway has one).
    assert [r.body["model"] for r in shows] == ["once:1b"]
