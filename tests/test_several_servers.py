"""Several Ollama servers behind one gateway: routing by model, balancing, failover, recovery.

Real stand-ins on loopback with different model sets, the gateway under gunicorn, the SDK. These
gateways balance by calls in flight (ROUTING=least-in-flight); test_routing.py has the default,
warm routing, with slots, the queue and conversations.
"""

import time
from contextlib import contextmanager

import openai
import pytest
import requests

from ollama_standin import StandinServer, tags_entry
from tests.conftest import eventually

HELLO = [{"role": "user", "content": "hi"}]
# The models each stand-in lists; llama3.2 is on two of them.
MODELS = {
    "a": ["llama3.2", "alpha"],
    "b": ["llama3.2", "beta"],
    "c": ["gamma", "nomic-embed-text"],
}


def start_standin(name, port=0):
    server = StandinServer(port=port)
    server.standin.models = [
        tags_entry(model, family="nomic-bert" if "embed" in model else "llama")
        for model in MODELS[name]
    ]
    return server


def counts(standins, path="/api/chat"):
    """Requests each stand-in received on ``path`` so far."""
    return {
        name: sum(r.path == path for r in server.standin.requests)
        for name, server in standins.items()
    }


def received(standins, before, path="/api/chat"):
    after = counts(standins, path)
    return {name: after[name] - before[name] for name in after}


@contextmanager
def running(servers):
    """Stand-ins by name, all stopped at the end (including any replaced meanwhile)."""
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def in_front_of(gateway_factory, servers, **env):
    """A gateway whose OLLAMA_BASE_URL lists ``servers``, and the SDK pointed at it."""
    gateway = gateway_factory(",".join(server.url for server in servers.values()), **env)
    return gateway, openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)


@pytest.fixture(scope="module")
def standins():
    with running({name: start_standin(name) for name in MODELS}) as servers:
        yield servers


@pytest.fixture(scope="module")
def cluster_and_sdk(gateway_factory, standins):
    """One gateway in front of the three stand-ins, with short refresh and back-off."""
    gateway, sdk = in_front_of(
        gateway_factory,
        standins,
        MODEL_REFRESH_INTERVAL="0.5",
        SERVER_RETRY_INTERVAL="0.5",
        CONNECT_TIMEOUT="1",
        ROUTING="least-in-flight",
    )
    with sdk:
        yield gateway, sdk


@pytest.fixture
def cluster(cluster_and_sdk):
    return cluster_and_sdk[0]


@pytest.fixture
def sdk(cluster_and_sdk):
    return cluster_and_sdk[1]


def test_each_request_goes_to_a_server_that_has_its_model(standins, sdk):
    before = counts(standins)
    for model in ("alpha", "beta", "gamma", "gamma:latest"):
        answer = sdk.chat.completions.create(model=model, messages=HELLO)
        assert answer.model == model
    assert received(standins, before) == {"a": 1, "b": 1, "c": 2}
    assert standins["b"].standin.last_request("/api/chat").body["model"] == "beta"

    before = counts(standins, "/api/embed")
    sdk.embeddings.create(model="nomic-embed-text", input=["one", "two"])
    assert received(standins, before, "/api/embed") == {"a": 0, "b": 0, "c": 1}

    before = counts(standins, "/api/generate")
    sdk.completions.create(model="alpha", prompt="Say")
    list(sdk.completions.create(model="alpha", prompt="Say", stream=True))
    assert received(standins, before, "/api/generate") == {"a": 2, "b": 0, "c": 0}


def test_a_model_on_no_server_is_404(standins, sdk):
    before = counts(standins)
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="nope", messages=HELLO)
    assert caught.value.body["code"] == "model_not_found"
    assert received(standins, before) == {"a": 0, "b": 0, "c": 0}


def test_a_model_pulled_on_one_server_is_found_at_once(standins, sdk):
    standins["c"].standin.add_model("delta")
    before = counts(standins)
    sdk.chat.completions.create(model="delta", messages=HELLO)
    assert received(standins, before) == {"a": 0, "b": 0, "c": 1}


def test_models_lists_the_union_each_once(sdk):
    ids = [model.id for model in sdk.models.list()]
    assert len(ids) == len(set(ids))
    assert {"llama3.2:latest", "alpha:latest", "beta:latest", "gamma:latest"} <= set(ids)
    assert "nomic-embed-text:latest" in ids
    assert sdk.models.retrieve("beta").id == "beta"


def test_health_reports_every_server(cluster, standins):
    body = requests.get(f"{cluster.url}/health", timeout=10).json()
    assert (body["status"], body["ollama"]) == ("healthy", "connected")
    assert [(s["url"], s["status"]) for s in body["servers"]] == [
        (server.url, "connected") for server in standins.values()
    ]
    assert all(s["models"] >= 2 for s in body["servers"])


def test_requests_for_a_model_on_two_servers_are_balanced(standins, sdk):
    before = counts(standins)
    for number in range(20):
        stream = number % 2 == 1
        answer = sdk.chat.completions.create(model="llama3.2", messages=HELLO, stream=stream)
        if stream:
            list(answer)
    got = received(standins, before)
    assert got["c"] == 0 and got["a"] + got["b"] == 20
    assert 5 <= got["a"] <= 15 and 5 <= got["b"] <= 15


def test_a_continued_response_goes_back_to_the_server_that_answered(standins, sdk):
    before = counts(standins)
    response = sdk.responses.create(model="llama3.2", input="hi")
    [first] = [name for name, got in received(standins, before).items() if got]
    for turn in range(6):
        stream = turn % 2 == 1
        response = sdk.responses.create(
            model="llama3.2", input="again", previous_response_id=response.id, stream=stream
        )
        if stream:
            response = [event for event in response][-1].response
    got = received(standins, before)
    assert got[first] == 7 and sum(got.values()) == 7
    # Without a previous response, calls still take turns.
    before = counts(standins)
    for _ in range(4):
        sdk.responses.create(model="llama3.2", input="hi")
    assert received(standins, before) == {"a": 2, "b": 2, "c": 0}


def test_the_server_with_fewer_requests_in_flight_is_chosen(standins, sdk):
    for name in ("a", "b"):
        standins[name].standin.configure(token_interval=1.0, reply="one two three")
    stream = sdk.chat.completions.create(model="llama3.2", messages=HELLO, stream=True)
    try:
        next(iter(stream))
        for name in ("a", "b"):
            standins[name].standin.configure(token_interval=0.0, reply=None)
        busy = next(n for n in ("a", "b") if standins[n].standin.state()["active_streams"])
        idle = "b" if busy == "a" else "a"
        before = counts(standins)
        for _ in range(4):
            sdk.chat.completions.create(model="llama3.2", messages=HELLO)
        assert received(standins, before) == {busy: 0, idle: 4, "c": 0}
    finally:
        stream.close()
        for name in ("a", "b"):
            standins[name].standin.configure(token_interval=0.0, reply=None)


def test_n_choices_are_spread_over_the_servers_with_the_model(standins, sdk):
    before = counts(standins)
    answer = sdk.chat.completions.create(model="llama3.2", messages=HELLO, n=2)
    assert len(answer.choices) == 2
    assert received(standins, before) == {"a": 1, "b": 1, "c": 0}


def test_a_server_killed_is_skipped_and_used_again_once_back(cluster, standins, sdk):
    port = int(standins["b"].url.rsplit(":", 1)[1])
    standins["b"].stop()
    before = counts(standins)
    for number in range(10):
        stream = number % 2 == 1
        answer = sdk.chat.completions.create(model="llama3.2", messages=HELLO, stream=stream)
        if stream:
            assert "".join(chunk.choices[0].delta.content or "" for chunk in answer)
        else:
            assert answer.choices[0].message.content
    assert received(standins, before)["a"] == 10

    # The servers are probed at most once a second.
    body = eventually(
        lambda: requests.get(f"{cluster.url}/health", timeout=10).json(),
        lambda found: found["servers"][1]["status"] == "disconnected",
    )
    assert (body["status"], [s["status"] for s in body["servers"]]) == (
        "healthy",
        ["connected", "disconnected", "connected"],
    )
    # A model only the dead server has: the error names it.
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="beta", messages=HELLO)
    assert caught.value.status_code == 503
    assert f"127.0.0.1:{port}" in caught.value.body["message"]

    standins["b"] = start_standin("b", port=port)
    deadline = time.monotonic() + 10
    while not counts(standins)["b"]:
        assert time.monotonic() < deadline, "the server brought back was never used"
        sdk.chat.completions.create(model="llama3.2", messages=HELLO)
        time.sleep(0.1)
    sdk.chat.completions.create(model="beta", messages=HELLO)
    assert counts(standins)["b"] >= 2


# --- Failover before the first byte, on a gateway that never refreshes during the test. ---


@pytest.fixture(scope="module")
def trio():
    with running({name: StandinServer() for name in ("d1", "d2", "d3")}) as servers:
        yield servers


@pytest.fixture(scope="module")
def steady_and_sdk(gateway_factory, trio):
    gateway, sdk = in_front_of(
        gateway_factory,
        trio,
        MODEL_REFRESH_INTERVAL="60",
        SERVER_RETRY_INTERVAL="60",
        TIMEOUT="1",
        ROUTING="least-in-flight",
    )
    with sdk:
        yield gateway, sdk


def test_a_server_silent_before_its_first_byte_is_failed_over(steady_and_sdk, trio):
    steady, steady_sdk = steady_and_sdk
    steady_sdk.models.list()
    trio["d2"].standin.delay_first_byte = 3
    try:
        for _ in range(6):
            assert steady_sdk.chat.completions.create(model="llama3.2", messages=HELLO).choices
    finally:
        trio["d2"].standin.delay_first_byte = 0
    # Tried once, then skipped for its back-off.
    assert counts(trio)["d2"] == 1
    assert steady.log().count("upstream_timeout); retrying on") == 1


def test_a_stream_to_a_dead_server_fails_over_before_any_byte(steady_and_sdk, trio):
    steady, steady_sdk = steady_and_sdk
    steady_sdk.models.list()
    trio["d3"].stop()
    before = counts(trio)
    for _ in range(6):
        stream = steady_sdk.chat.completions.create(model="llama3.2", messages=HELLO, stream=True)
        chunks = list(stream)
        assert chunks[-1].choices[0].finish_reason == "stop"
    assert sum(received(trio, before).values()) == 6
    assert steady.log().count("ollama_unavailable); retrying on") == 1
