"""Warm routing (ROUTING=warm, the default) in front of stand-ins that play Ollama's scheduler:
one slot per loaded model, a time to load a model that is not loaded, a bounded queue with
Ollama's 503 busy. The gateway runs under gunicorn with gevent workers; clients are the SDK
and plain HTTP. test_routing_rules.py has the pure rules; test_several_servers.py the
least-in-flight balancing, failover and recovery.
"""

import json
import threading
import time
from contextlib import contextmanager

import openai
import pytest
import requests

from ollama_standin import StandinServer, tags_entry
from tests.conftest import eventually

MODEL = "llama3.2"
HELLO = [{"role": "user", "content": "hi"}]
# Seconds a stand-in takes to load a model it does not have loaded.
LOAD_SECONDS = 0.4


def start_standin(**knobs):
    """A stand-in listing two models, with one slot per loaded model unless told otherwise."""
    server = StandinServer()
    server.standin.models = [tags_entry(MODEL), tags_entry("qwen3")]
    server.standin.configure(**{"num_parallel": 1, "load_seconds": LOAD_SECONDS, **knobs})
    return server


@contextmanager
def standins(count=2, **knobs):
    servers = [start_standin(**knobs) for _ in range(count)]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def gateway_for(gateway_factory, servers, entries=None, **env):
    """A one-worker gateway in front of ``servers`` (OLLAMA_BASE_URL ``entries`` if given), with
    one slot per server and model unless told otherwise, reading /api/ps often."""
    settings = {"SERVER_SLOTS": "1", "MODEL_REFRESH_INTERVAL": "0.3", **env}
    return gateway_factory(entries or ",".join(server.url for server in servers), **settings)


def sdk(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)


def chat(gateway, stream=False, timeout=30, **fields):
    body = {"model": MODEL, "messages": HELLO, "stream": stream, **fields}
    return requests.post(
        f"{gateway.url}/v1/chat/completions", json=body, stream=stream, timeout=timeout
    )


def preload(server, model=MODEL):
    """Load ``model`` on ``server`` as Ollama does for a chat call with no messages."""
    answer = requests.post(
        f"{server.url}/api/chat", json={"model": model, "stream": False}, timeout=10
    )
    assert answer.json()["done_reason"] == "load"


def loaded_seen(gateway, server, model=MODEL):
    """Whether the gateway's /health lists ``model`` as loaded on ``server``."""
    report = requests.get(f"{gateway.url}/health", timeout=5).json()
    for probe in report.get("servers", []):
        if probe["url"] == server.url:
            return f"{model}:latest" in probe.get("loaded", [])
    return False


def chats_on(server):
    """Generation calls the stand-in received (loads by the tests themselves excluded)."""
    return sum(
        r.path == "/api/chat" and bool(r.body.get("messages")) for r in server.standin.requests
    )


@contextmanager
def holding_slot(gateway, **fields):
    """A streamed call that has begun to answer and holds its slot until the block ends."""
    with chat(gateway, stream=True, **fields) as answer:
        assert answer.status_code == 200
        lines = answer.iter_lines()
        assert next(line for line in lines if line.startswith(b"data:"))
        yield answer


def test_a_warm_server_wins_over_a_cold_one(gateway_factory):
    with standins() as (first, second):
        preload(second)
        gateway = gateway_for(gateway_factory, [first, second])
        assert eventually(lambda: loaded_seen(gateway, second))
        answers = [chat(gateway) for _ in range(4)]
        assert [a.headers["x-ollama-server"] for a in answers] == [second.url] * 4
        assert all(a.headers["x-queue-time-ms"] == "0" for a in answers)
        assert (first.standin.loads, second.standin.loads) == (0, 1)
        assert chats_on(first) == 0


def test_least_in_flight_takes_turns_and_loads_the_model_everywhere(gateway_factory):
    # The rule warm routing replaces: the same calls load the model on the cold server too.
    with standins() as (first, second):
        preload(second)
        gateway = gateway_for(gateway_factory, [first, second], ROUTING="least-in-flight")
        answers = [chat(gateway) for _ in range(4)]
        assert sorted(a.headers["x-ollama-server"] for a in answers) == sorted(
            [first.url, second.url] * 2
        )
        assert first.standin.loads == 1


def test_a_call_waits_for_the_warm_slot_rather_than_loading_the_model_cold(gateway_factory):
    with standins(token_interval=0.05, reply="one two three four five six") as (first, second):
        preload(second)
        gateway = gateway_for(gateway_factory, [first, second])
        assert eventually(lambda: loaded_seen(gateway, second))
        # A call has ended: the gateway knows a call holds its slot far less than a load takes.
        chat(gateway)
        with holding_slot(gateway) as held:
            waiting = chat(gateway, messages=[{"role": "user", "content": "next"}])
            assert held.headers["x-ollama-server"] == second.url
        assert waiting.status_code == 200
        assert waiting.headers["x-ollama-server"] == second.url
        assert int(waiting.headers["x-queue-time-ms"]) > 50
        assert first.standin.loads == 0
        assert second.standin.state()["peak_running"] == 1


def test_a_model_loaded_nowhere_loads_where_there_is_most_room(gateway_factory):
    with standins() as (first, second):
        preload(first, "qwen3")
        gateway = gateway_for(gateway_factory, [first, second])
        assert eventually(lambda: loaded_seen(gateway, first, "qwen3"))
        answer = chat(gateway)
        assert answer.headers["x-ollama-server"] == second.url
        assert int(answer.elapsed.total_seconds() * 1000) >= LOAD_SECONDS * 1000


AFFINITY_KEYS = {
    "prompt_cache_key": {"prompt_cache_key": "thread-7"},
    "user": {"user": "ada"},
    "opening": {},
}


@pytest.mark.parametrize("field", AFFINITY_KEYS)
def test_a_conversation_goes_back_to_the_server_of_its_last_turn(gateway_factory, field):
    with standins() as (first, second):
        for server in (first, second):
            preload(server)
        gateway = gateway_for(gateway_factory, [first, second])
        assert eventually(lambda: loaded_seen(gateway, first) and loaded_seen(gateway, second))
        opening = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
        history = list(opening)
        servers = []
        for turn in range(5):
            answer = chat(gateway, messages=history, **AFFINITY_KEYS[field])
            servers.append(answer.headers["x-ollama-server"])
            history += [
                answer.json()["choices"][0]["message"],
                {"role": "user", "content": f"and then {turn}?"},
            ]
        assert len(set(servers)) == 1
        # Other conversations, meanwhile, take turns between the two idle servers.
        others = [
            chat(gateway, messages=[{"role": "user", "content": f"new {n}"}]).headers[
                "x-ollama-server"
            ]
            for n in range(4)
        ]
        assert set(others) == {first.url, second.url}


def test_a_continued_response_goes_back_to_the_server_of_the_previous_one(gateway_factory):
    with standins() as (first, second):
        for server in (first, second):
            preload(server)
        gateway = gateway_for(gateway_factory, [first, second])
        assert eventually(lambda: loaded_seen(gateway, first) and loaded_seen(gateway, second))
        client = sdk(gateway)
        response = client.responses.with_raw_response.create(model=MODEL, input="hi")
        servers = [response.headers["x-ollama-server"]]
        previous = response.parse().id
        for turn in range(4):
            response = client.responses.with_raw_response.create(
                model=MODEL, input=f"and then {turn}?", previous_response_id=previous
            )
            servers.append(response.headers["x-ollama-server"])
            previous = response.parse().id
        client.close()
        assert len(set(servers)) == 1


def test_a_busy_server_s_503_moves_the_call_to_another_before_its_first_byte(gateway_factory):
    # The gateway believes the first server has two slots; Ollama there runs one and queues
    # none, so the second call there is Ollama's 503 busy.
    with standins(token_interval=0.1, reply="a b c d e f") as (first, second):
        preload(first)
        first.standin.configure(max_queue=0)
        entries = f"{first.url}#slots=2,{second.url}"
        gateway = gateway_for(gateway_factory, [first, second], entries=entries)
        assert eventually(lambda: loaded_seen(gateway, first))
        with holding_slot(gateway) as held:
            moved = chat(gateway)
            assert held.headers["x-ollama-server"] == first.url
        assert moved.status_code == 200
        assert moved.headers["x-ollama-server"] == second.url
        assert chats_on(first) == 2 and chats_on(second) == 1
        # The busy server is skipped for a moment, then serves again.
        time.sleep(1.1)
        assert chat(gateway).status_code == 200


def test_the_queue_answers_429_when_full_and_503_when_the_wait_is_too_long(gateway_factory):
    # The first call holds the one slot for 3.6 s; the second waits 2 s of it, long enough for
    # the third to find the queue full on a loaded machine.
    reply = " ".join(f"w{n}" for n in range(12))
    with standins(count=1, token_interval=0.3, reply=reply) as (only,):
        preload(only)
        gateway = gateway_for(gateway_factory, [only], MAX_QUEUE="1", QUEUE_TIMEOUT="2")
        waited = {}
        with holding_slot(gateway):
            waiting = threading.Thread(target=lambda: waited.update(answer=chat(gateway)))
            waiting.start()
            eventually(
                lambda: (
                    'ollama_openai_queue_length{model="llama3.2:latest"} 1.0'
                    in requests.get(f"{gateway.url}/metrics", timeout=5).text
                )
            )
            with pytest.raises(openai.RateLimitError) as full:
                sdk(gateway).chat.completions.create(model=MODEL, messages=HELLO)
            waiting.join(10)
        assert full.value.code == "rate_limit_exceeded"
        assert "MAX_QUEUE" in full.value.message
        assert 1 <= int(full.value.response.headers["retry-after"]) <= 60
        timed_out = waited["answer"]
        assert timed_out.status_code == 503
        assert timed_out.json()["error"]["code"] == "ollama_busy"
        assert "QUEUE_TIMEOUT" in timed_out.json()["error"]["message"]
        assert 1 <= int(timed_out.headers["retry-after"]) <= 60
        assert int(timed_out.headers["x-queue-time-ms"]) >= 2000
        # Neither reached Ollama, and the gateway serves again once the slot is free.
        assert chats_on(only) == 1
        assert chat(gateway).status_code == 200


def test_a_stream_waiting_for_its_slot_gets_keep_alives_then_its_answer(gateway_factory):
    reply = "one two three four five six seven eight"
    with standins(count=1, token_interval=0.2, reply=reply) as (only,):
        gateway = gateway_for(gateway_factory, [only], KEEPALIVE_INTERVAL="0.2")
        with holding_slot(gateway):
            queued = chat(gateway, stream=True)
            assert queued.status_code == 200
            lines = [line for line in queued.iter_lines() if line]
    events = [json.loads(line[5:]) for line in lines if line.startswith(b"data: {")]
    assert lines[-1] == b"data: [DONE]"
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
    assert text == reply
    # The stream opened at once (its role chunk), then kept alive while it waited its turn.
    first_text = next(i for i, line in enumerate(lines) if b'"content":"one"' in line)
    assert lines[1:first_text].count(b": keep-alive") >= 3
    assert only.standin.state()["peak_running"] == 1


def test_slots_are_shared_among_the_workers(gateway_factory):
    # Two workers, three slots on the one server: at most three calls reach it at once.
    with standins(count=1, num_parallel=None, token_interval=0.1, reply="a b c d e") as (only,):
        preload(only)
        gateway = gateway_for(gateway_factory, [only], SERVER_SLOTS="3", WEB_CONCURRENCY="2")
        answers = []
        callers = [threading.Thread(target=lambda: answers.append(chat(gateway))) for _ in range(8)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(30)
        assert [a.status_code for a in answers] == [200] * 8
        assert only.standin.state()["peak_running"] <= 3


def test_the_server_header_can_be_hidden_and_is_readable_by_browsers(gateway_factory):
    with standins(count=1) as (only,):
        hidden = gateway_for(gateway_factory, [only], SERVER_HEADER="false")
        answer = chat(hidden)
        assert answer.status_code == 200
        assert "x-ollama-server" not in answer.headers
        assert answer.headers["x-queue-time-ms"] == "0"
        shown = gateway_for(gateway_factory, [only], CORS_ORIGINS="http://app.test")
        answer = requests.post(
            f"{shown.url}/v1/chat/completions",
            json={"model": MODEL, "messages": HELLO},
            headers={"Origin": "http://app.test"},
            timeout=30,
        )
        exposed = answer.headers["access-control-expose-headers"].lower()
        assert "x-ollama-server" in exposed and "x-queue-time-ms" in exposed


def test_health_and_metrics_show_what_each_server_has_loaded_and_where_calls_went(
    gateway_factory,
):
    with standins() as (first, second):
        preload(first)
        gateway = gateway_for(gateway_factory, [first, second])
        assert eventually(lambda: loaded_seen(gateway, first))
        assert not loaded_seen(gateway, second)
        chat(gateway)
        chat(gateway, model="qwen3")
        metrics = eventually(
            lambda: requests.get(f"{gateway.url}/metrics", timeout=5).text,
            lambda text: 'reason="cold"' in text,
        )
        assert (
            f'ollama_openai_routing_decisions_total{{reason="loaded",server="{first.url}"}} 1.0'
            in metrics
        )
        assert (
            f'ollama_openai_routing_decisions_total{{reason="cold",server="{second.url}"}} 1.0'
            in metrics
        )
        assert 'ollama_openai_queue_wait_seconds_count{model="llama3.2:latest"}' in metrics
        assert eventually(lambda: loaded_seen(gateway, second, "qwen3"))
