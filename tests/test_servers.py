"""OllamaServers: choosing a server per call by model, balancing, failover, learning models.

The rules are checked on plain tables (``choose_server``) and on OllamaServers with upstream
HTTP faked by ``responses``; tests/test_several_servers.py runs them against real stand-ins.
"""

from http.client import RemoteDisconnected

import pytest
import requests
import responses
from urllib3.exceptions import ProtocolError

from ollama_openai import create_app
from ollama_openai.config import Settings
from ollama_openai.errors import ApiError
from ollama_openai.routing import ServerState, choose_server, merge_tags
from ollama_openai.servers import OllamaServers
from tests.conftest import eventually

A, B, C = "http://gpu-a.test:11434", "http://gpu-b.test:11434", "http://gpu-c.test:11434"
LLAMA = "llama3.2:latest"
CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": False}
ANSWER = {
    "model": "llama3.2",
    "message": {"role": "assistant", "content": "Hello."},
    "done": True,
    "done_reason": "stop",
    "prompt_eval_count": 3,
    "eval_count": 2,
}
# Long enough that the background refresh never runs during a test.
QUIET = 3600


def table(**servers):
    return [ServerState(url, frozenset(models)) for url, models in servers.items()]


def tags(*names):
    return {"models": [{"name": name, "model": name, "modified_at": ""} for name in names]}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


# --- choose_server: the rules on a plain table. ---


def choices(states, model, count, now=0.0):
    """``count`` choices in a row, each noted as OllamaServers does (for the turns)."""
    chosen = []
    for _ in range(count):
        state = choose_server(states, model, now)
        state.last_chosen = max(s.last_chosen for s in states) + 1
        chosen.append(state.url)
    return chosen


def test_only_servers_listing_the_model_are_chosen():
    states = table(a=["alpha:latest"], b=[LLAMA], c=["gamma:latest"])
    assert set(choices(states, LLAMA, 5)) == {"b"}
    assert choose_server(states, "nope:latest", 0) is None


def test_the_server_with_fewest_calls_in_flight_wins():
    states = table(a=[LLAMA], b=[LLAMA], c=[LLAMA])
    states[0].in_flight, states[1].in_flight, states[2].in_flight = 3, 1, 2
    assert set(choices(states, LLAMA, 5)) == {"b"}


def test_ties_take_turns_whatever_else_the_servers_do():
    states = table(a=[LLAMA], b=[LLAMA], c=["other:latest"])
    chosen = []
    for _ in range(4):
        # Calls for another model in between must not skew the turns.
        assert choices(states, "other:latest", 1) == ["c"]
        chosen += choices(states, LLAMA, 1)
    assert chosen == ["a", "b", "a", "b"]


def test_down_servers_are_skipped_until_their_back_off_ends():
    states = table(a=[LLAMA], b=[LLAMA])
    states[0].down_until = 10.0
    assert set(choices(states, LLAMA, 4, now=9.9)) == {"b"}
    assert sorted(choices(states, LLAMA, 4, now=10.0)) == ["a", "a", "b", "b"]


def test_when_every_server_with_the_model_is_down_the_first_back_is_tried():
    states = table(a=[LLAMA], b=[LLAMA], c=["other:latest"])
    states[0].down_until, states[1].down_until = 20.0, 15.0
    assert choose_server(states, LLAMA, 0).url == "b"
    # A retry only goes to a server that is up.
    assert choose_server(states, LLAMA, 0, exclude=("a",), allow_down=False) is None


def test_a_server_whose_models_are_unknown_may_have_any():
    states = [ServerState("a"), *table(b=[LLAMA])]
    assert choose_server(states, "other:latest", 0).url == "a"


def test_a_server_is_read_again_after_the_interval_or_its_back_off():
    state = ServerState("a", refreshed_at=100.0)
    assert (state.refresh_due(129, 30), state.refresh_due(130, 30)) == (False, True)
    state.down_until = 105.0
    assert (state.refresh_due(104, 30), state.refresh_due(105, 30)) == (False, True)


def test_models_are_listed_once_as_the_first_server_lists_them():
    first = {"models": [{"name": "llama3.2:latest", "size": 1}, {"name": "alpha:latest"}]}
    second = {"models": [{"name": "llama3.2", "size": 2}, {"name": "beta:latest"}]}
    merged = merge_tags([first, second])
    assert [(m["name"], m.get("size")) for m in merged["models"]] == [
        ("llama3.2:latest", 1),
        ("alpha:latest", None),
        ("beta:latest", None),
    ]


# --- OllamaServers over faked HTTP. ---


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def servers(clock):
    return OllamaServers(
        [A, B, C],
        timeout=2,
        connect_timeout=1,
        refresh_interval=QUIET,
        retry_interval=10,
        clock=clock,
    )


@pytest.fixture
def upstream():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{A}/api/tags", json=tags(LLAMA, "alpha"))
        mock.get(f"{B}/api/tags", json=tags(LLAMA, "beta"))
        mock.get(f"{C}/api/tags", json=tags("gamma"))
        yield mock


def chat_calls(mock, base):
    return sum(call.request.url == f"{base}/api/chat" for call in mock.calls)


def test_calls_go_to_a_server_listing_the_model(servers, upstream):
    for base in (A, B, C):
        upstream.post(f"{base}/api/chat", json=ANSWER)
    servers.post("/api/chat", {**CHAT, "model": "gamma"})
    servers.post("/api/chat", {**CHAT, "model": "alpha:latest"})
    assert [chat_calls(upstream, base) for base in (A, B, C)] == [1, 0, 1]


def test_calls_for_a_model_on_two_servers_alternate(servers, upstream):
    for base in (A, B):
        upstream.post(f"{base}/api/chat", json=ANSWER)
    seen = []
    for _ in range(4):
        servers.post("/api/chat", CHAT, on_server=seen.append)
    assert sorted(seen) == [A, A, B, B]


def test_a_model_on_no_server_is_looked_for_again_then_404(servers, upstream):
    with pytest.raises(ApiError) as caught:
        servers.post("/api/chat", {**CHAT, "model": "nope"})
    assert (caught.value.status, caught.value.code) == (404, "model_not_found")
    # Once at first use, once more for the miss.
    assert sum(call.request.url == f"{A}/api/tags" for call in upstream.calls) == 2


def test_a_model_pulled_since_the_last_refresh_is_found(servers, upstream):
    servers.refresh()
    upstream.replace(responses.GET, f"{C}/api/tags", json=tags("gamma", "delta"))
    upstream.post(f"{C}/api/chat", json=ANSWER)
    assert servers.post("/api/chat", {**CHAT, "model": "delta"})["done"]


def test_a_refused_connection_fails_over_and_marks_the_server_down(servers, upstream, clock):
    upstream.post(f"{A}/api/chat", body=requests.ConnectionError("refused"))
    upstream.post(f"{B}/api/chat", json=ANSWER)
    seen = []
    for _ in range(3):
        assert servers.post("/api/chat", CHAT, on_server=seen.append)["done"]
    assert seen.count(A) == 1 and chat_calls(upstream, A) == 1
    assert chat_calls(upstream, B) == 3
    state = next(s for s in servers.states if s.url == A)
    assert state.down_until == clock.now + 10
    assert "gpu-a.test" in state.reason


def test_a_timeout_before_the_first_byte_fails_over(servers, upstream):
    upstream.post(f"{A}/api/chat", body=requests.ReadTimeout("slow"))
    upstream.post(f"{B}/api/chat", json=ANSWER)
    for _ in range(2):
        assert servers.post("/api/chat", CHAT)["done"]
    assert (chat_calls(upstream, A), chat_calls(upstream, B)) == (1, 2)


def test_a_server_that_hangs_up_before_answering_fails_over(servers, upstream):
    # Connected, then cut: the Ollama there crashed or restarted while working on the call.
    hung_up = ProtocolError("Connection aborted.", RemoteDisconnected("closed"))
    upstream.post(f"{A}/api/chat", body=requests.ConnectionError(hung_up))
    upstream.post(f"{B}/api/chat", json=ANSWER)
    for _ in range(2):
        assert servers.post("/api/chat", CHAT)["done"]
    assert (chat_calls(upstream, A), chat_calls(upstream, B)) == (1, 2)


def test_an_error_ollama_answered_is_not_retried_elsewhere(servers, upstream):
    upstream.post(
        f"{A}/api/chat", status=500, json={"error": "llama runner process has terminated"}
    )
    upstream.post(
        f"{B}/api/chat", status=500, json={"error": "llama runner process has terminated"}
    )
    with pytest.raises(ApiError) as caught:
        servers.post("/api/chat", CHAT)
    assert caught.value.status == 502
    assert chat_calls(upstream, A) + chat_calls(upstream, B) == 1
    assert all(state.down_until == 0 for state in servers.states)


def test_a_404_from_a_stale_list_goes_to_another_server_listing_the_model(servers, upstream):
    # The model was removed from A since its list was read; B still has it.
    upstream.post(f"{A}/api/chat", status=404, json={"error": "model 'llama3.2' not found"})
    upstream.post(f"{B}/api/chat", json=ANSWER)
    for _ in range(3):
        assert servers.post("/api/chat", CHAT)["done"]
    assert (chat_calls(upstream, A), chat_calls(upstream, B)) == (1, 3)
    assert all(state.down_until == 0 for state in servers.states)


def test_a_404_with_no_other_server_listing_the_model_is_the_404(servers, upstream):
    upstream.post(f"{C}/api/chat", status=404, json={"error": "model 'gamma' not found"})
    with pytest.raises(ApiError) as caught:
        servers.post("/api/chat", {**CHAT, "model": "gamma"})
    assert (caught.value.status, caught.value.code) == (404, "model_not_found")
    assert chat_calls(upstream, C) == 1


def test_the_error_of_the_last_server_tried_is_raised_when_none_is_left(servers, upstream):
    for base in (A, B):
        upstream.post(f"{base}/api/chat", body=requests.ConnectionError("refused"))
    with pytest.raises(ApiError) as caught:
        servers.post("/api/chat", CHAT)
    assert (caught.value.status, caught.value.code) == (503, "ollama_unavailable")
    assert chat_calls(upstream, A) == chat_calls(upstream, B) == 1


def test_a_down_server_is_used_again_after_its_back_off(servers, upstream, clock):
    upstream.post(f"{A}/api/chat", body=requests.ConnectionError("refused"))
    upstream.post(f"{B}/api/chat", json=ANSWER)
    servers.post("/api/chat", CHAT)
    upstream.replace(responses.POST, f"{A}/api/chat", json=ANSWER)
    clock.now += 10
    # The background probe reads the lists of servers whose back-off has ended.
    servers.refresh(due_only=True)
    assert next(s for s in servers.states if s.url == A).down_until == 0
    seen = []
    for _ in range(4):
        servers.post("/api/chat", CHAT, on_server=seen.append)
    assert sorted(seen) == [A, A, B, B]


def test_a_server_that_fails_its_refresh_is_down(servers, upstream):
    upstream.replace(responses.GET, f"{B}/api/tags", body=requests.ConnectionError("refused"))
    servers.refresh()
    states = {state.url: state for state in servers.states}
    assert states[B].down_until > 0 and states[A].down_until == 0


def test_streams_count_as_in_flight_until_closed(servers, upstream):
    for base in (A, B):
        upstream.post(f"{base}/api/chat", body=b'{"done": true}\n')
    first = servers.stream("/api/chat", {**CHAT, "stream": True})
    counts = {state.url: state.in_flight for state in servers.states}
    assert sorted(counts.values()) == [0, 0, 1]
    second = servers.stream("/api/chat", {**CHAT, "stream": True})
    assert sorted(state.in_flight for state in servers.states) == [0, 1, 1]
    for stream in (first, second, first):
        stream.close()
    assert [state.in_flight for state in servers.states] == [0, 0, 0]


def test_a_stream_that_cannot_open_fails_over_and_counts_nothing(servers, upstream):
    upstream.post(f"{A}/api/chat", body=requests.ConnectionError("refused"))
    upstream.post(f"{B}/api/chat", body=b'{"done": true}\n')
    seen = []
    streams = [servers.stream("/api/chat", CHAT, on_server=seen.append) for _ in range(2)]
    assert seen[:2] in ([A, B], [B, B])
    for stream in streams:
        assert list(stream.lines()) == [{"done": True}]
        stream.close()
    assert all(state.in_flight == 0 for state in servers.states)


def test_model_lists_merge_and_survive_a_server_down(servers, upstream):
    upstream.replace(responses.GET, f"{B}/api/tags", body=requests.ConnectionError("refused"))
    names = [model["name"] for model in servers.tags()["models"]]
    assert names == [LLAMA, "alpha", "gamma"]


def test_one_server_gets_every_call_as_before(upstream):
    single = OllamaServers([A], timeout=2, connect_timeout=1)
    upstream.post(f"{A}/api/chat", status=404, json={"error": "model 'nope' not found"})
    with pytest.raises(ApiError) as caught:
        single.post("/api/chat", {**CHAT, "model": "nope"})
    assert caught.value.code == "model_not_found"
    # No model lists are read for one server: Ollama itself answers the 404.
    assert [call.request.url for call in upstream.calls] == [f"{A}/api/chat"]


def test_health_lists_every_server_and_is_healthy_while_one_answers(upstream):
    upstream.get(f"{A}/api/version", json={"version": "0.12.11"})
    upstream.get(f"{B}/api/version", body=requests.ConnectionError("refused"))
    upstream.get(f"{C}/api/version", body=requests.ConnectionError("refused"))
    app = create_app(
        Settings(
            ollama_base_url=f"{A},{B},{C}",
            timeout=2,
            connect_timeout=1,
            model_refresh_interval=QUIET,
        )
    )
    client = app.test_client()
    client.get("/v1/models")
    body = client.get("/health").get_json()
    assert (body["status"], body["ollama"], body["ollama_version"]) == (
        "healthy",
        "connected",
        "0.12.11",
    )
    assert [(s["url"], s["status"], s.get("models")) for s in body["servers"]] == [
        (A, "connected", 2),
        (B, "disconnected", 2),
        (C, "disconnected", 1),
    ]
    assert "gpu-b.test" in body["servers"][1]["reason"]
    upstream.replace(responses.GET, f"{A}/api/version", body=requests.ConnectionError("refused"))
    # The servers are probed at most once a second.
    response = eventually(lambda: client.get("/health"), lambda answer: answer.status_code == 503)
    assert response.status_code == 503
    assert response.get_json()["ollama"] == "disconnected"
    assert all(host in response.get_json()["reason"] for host in ("gpu-a", "gpu-b", "gpu-c"))


def test_model_lists_leave_out_servers_marked_down(servers, upstream):
    upstream.post(f"{A}/api/chat", body=requests.ConnectionError("refused"))
    upstream.post(f"{B}/api/chat", json=ANSWER)
    servers.post("/api/chat", CHAT)
    tags_calls = sum(call.request.url == f"{A}/api/tags" for call in upstream.calls)
    names = [model["name"] for model in servers.tags()["models"]]
    assert names == [LLAMA, "beta", "gamma"]
    assert sum(call.request.url == f"{A}/api/tags" for call in upstream.calls) == tags_calls
