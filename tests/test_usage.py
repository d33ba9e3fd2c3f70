"""The usage ledger seen from outside: what an answer is charged (streams, and streams the
client leaves), token budgets (429 insufficient_quota), GET /v1/usage and who sees what, two
instances sharing one budget through Redis, and a worker killed with SIGKILL."""

import dataclasses
import hashlib
import json
import os
import re
import signal
import socket
from datetime import UTC, datetime, timedelta

import openai
import pytest
import requests
import responses

from ollama_openai import create_app
from ollama_openai.usage import Usage
from tests.conftest import eventually
from tests.test_team_keys import HELLO, OLLAMA, TAGS, chat_lines

KEYS = {
    "alice": "sk-alice-0123456789",
    "bob": "sk-bob-0123456789",
    "carol": "sk-carol-0123456789",
    "ops": "sk-ops-0123456789",
}
TEAM = f"""
[keys.alice]
sha256 = "{hashlib.sha256(KEYS["alice"].encode()).hexdigest()}"
models = ["llama3.2", "nomic-*"]

[keys.bob]
sha256 = "{hashlib.sha256(KEYS["bob"].encode()).hexdigest()}"
daily_tokens = 20

[keys.carol]
sha256 = "{hashlib.sha256(KEYS["carol"].encode()).hexdigest()}"
monthly_tokens = 10

[keys.ops]
sha256 = "{hashlib.sha256(KEYS["ops"].encode()).hexdigest()}"
admin = true
"""
CHAT = {"model": "llama3.2", "messages": HELLO}
EMBED = {"model": "nomic-embed-text", "input": ["a", "b"]}


def headers(name):
    return {"Authorization": f"Bearer {KEYS[name]}"}


def today():
    return datetime.now(UTC).date().isoformat()


@pytest.fixture
def team(settings, tmp_path):
    (tmp_path / "team.toml").write_text(TEAM)
    app = create_app(dataclasses.replace(settings, team_keys_file=str(tmp_path / "team.toml")))
    return app.test_client()


def ollama_chat(request):
    """Ollama's /api/chat, streamed or not: "One two three", 7 prompt and 3 completion tokens."""
    lines = chat_lines("One", " two", " three")
    if json.loads(request.body).get("stream", True):
        return 200, {}, lines
    done = json.loads(lines.splitlines()[-1])
    done["message"]["content"] = "One two three"
    return 200, {}, json.dumps(done)


@pytest.fixture
def upstream():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{OLLAMA}/api/tags", json=TAGS)
        mock.add_callback(responses.POST, f"{OLLAMA}/api/chat", callback=ollama_chat)
        mock.post(
            f"{OLLAMA}/api/embed",
            json={
                "model": "nomic-embed-text",
                "embeddings": [[0.1], [0.2]],
                "prompt_eval_count": 4,
            },
        )
        yield mock


def call(client, name, path="/v1/chat/completions", body=CHAT):
    """One request, read whole and closed as a server closes it; its answer."""
    answer = client.post(path, json=body, headers=headers(name))
    answer.get_data()
    answer.close()
    return answer


def usage(client, name="ops", **query):
    answer = client.get("/v1/usage", headers=headers(name), query_string=query)
    return answer.status_code, answer.json


# --- What an answer is charged ---


def test_answers_are_charged_with_their_usage_when_they_close(team, upstream):
    call(team, "alice")
    call(team, "alice", body={**CHAT, "stream": True})
    call(team, "alice", "/v1/embeddings", EMBED)
    status, body = usage(team)
    assert status == 200
    assert body["data"] == [
        {
            "date": today(),
            "key": "alice",
            "model": "llama3.2",
            "requests": 2,
            "prompt_tokens": 14,
            "completion_tokens": 6,
            "total_tokens": 20,
        },
        {
            "date": today(),
            "key": "alice",
            "model": "nomic-embed-text",
            "requests": 1,
            "prompt_tokens": 4,
            "completion_tokens": 0,
            "total_tokens": 4,
        },
    ]
    assert body["total"] == {
        "requests": 3,
        "prompt_tokens": 18,
        "completion_tokens": 6,
        "total_tokens": 24,
    }


def test_a_stream_the_client_leaves_is_charged_what_it_streamed(
    settings, tmp_path, ollama, ollama_url
):
    # The real stand-in, a token every 0.2 s: the client leaves while Ollama still generates.
    ollama.configure(reply="One two three four five", token_interval=0.2)
    (tmp_path / "team.toml").write_text(TEAM)
    team = create_app(
        dataclasses.replace(
            settings, ollama_base_url=ollama_url, team_keys_file=str(tmp_path / "team.toml")
        )
    ).test_client()
    answer = team.post(
        "/v1/chat/completions", json={**CHAT, "stream": True}, headers=headers("alice")
    )
    events = b""
    for piece in answer.iter_encoded():
        events += piece
        if b"two" in events:
            break
    answer.close()
    # The role chunk, then one chunk per Ollama line: two lines were streamed.
    assert b'"role":"assistant"' in events and b"three" not in events
    row = usage(team)[1]["data"][0]
    assert (row["requests"], row["prompt_tokens"], row["completion_tokens"]) == (1, 0, 2)


def test_refused_and_failed_requests_are_not_charged(team, upstream):
    upstream.remove(responses.POST, f"{OLLAMA}/api/chat")
    upstream.post(f"{OLLAMA}/api/chat", status=500, json={"error": "boom"})
    assert call(team, "alice").status_code == 502
    assert call(team, "alice", body={"model": "llama3.2"}).status_code == 400
    assert call(team, "alice", body={**CHAT, "model": "qwen3:8b"}).status_code == 404
    assert usage(team)[1]["data"] == []


def test_without_keys_usage_is_kept_under_no_key(client, upstream):
    client.post("/v1/chat/completions", json=CHAT).close()
    body = client.get("/v1/usage").json
    assert [(row["key"], row["model"], row["requests"]) for row in body["data"]] == [
        (None, "llama3.2", 1)
    ]
    assert body["budgets"] == []


# --- Budgets ---


def test_a_spent_daily_budget_is_insufficient_quota_until_midnight_utc(team, upstream):
    # 7 prompt + 3 completion tokens a request: the budget of 20 is reached by the second.
    assert [call(team, "bob").status_code for _ in range(2)] == [200, 200]
    refused = call(team, "bob")
    assert refused.status_code == 429
    error = refused.json["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "insufficient_quota",
        "insufficient_quota",
        None,
    )
    midnight = datetime.now(UTC).date() + timedelta(days=1)
    assert re.fullmatch(
        r"The key 'bob' has spent its daily budget of 20 tokens \(20 used this day, UTC\)\. "
        rf"It resets at {midnight.isoformat()}T00:00:00Z, in (\d+h)?(\d+m)?\d+s\.",
        error["message"],
    )
    # The SDKs must not retry it: waiting seconds does not refill a budget.
    assert refused.headers["x-should-retry"] == "false"
    # The key can still see where it stands, and other keys go on.
    status, body = usage(team, "bob")
    assert status == 200
    assert body["budgets"] == [
        {
            "key": "bob",
            "period": "day",
            "limit": 20,
            "used": 20,
            "remaining": 0,
            "resets_at": int(datetime.combine(midnight, datetime.min.time(), UTC).timestamp()),
        }
    ]
    assert call(team, "alice").status_code == 200
    assert team.get("/v1/models", headers=headers("bob")).status_code == 200


def test_a_spent_monthly_budget_names_the_month(team, upstream):
    store = team.application.extensions["ollama_openai"].usage
    store.record(Usage(today(), "carol", "llama3.2", 1, 6, 6))
    refused = call(team, "carol", "/v1/embeddings", EMBED)
    assert refused.status_code == 429
    first = (datetime.now(UTC).date().replace(day=1) + timedelta(days=32)).replace(day=1)
    assert (
        "has spent its monthly budget of 10 tokens (12 used this month, UTC). "
        f"It resets at {first.isoformat()}T00:00:00Z" in refused.json["error"]["message"]
    )


# --- GET /v1/usage ---


def test_a_key_sees_its_own_usage_and_an_admin_key_everyones(team, upstream):
    for name in ("alice", "bob", "ops"):
        call(team, name)
    keys = {row["key"] for row in usage(team, "alice")[1]["data"]}
    assert keys == {"alice"}
    assert {row["key"] for row in usage(team, "ops")[1]["data"]} == {"alice", "bob", "ops"}
    assert [row["key"] for row in usage(team, "ops", key="bob")[1]["data"]] == ["bob"]
    assert usage(team, "alice", key="alice")[0] == 200
    status, body = usage(team, "alice", key="bob")
    assert status == 403
    assert body["error"]["code"] == "permission_denied"
    # An admin without a filter sees every budget; with one, that key's.
    assert [b["key"] for b in usage(team, "ops")[1]["budgets"]] == ["bob", "carol"]
    assert [b["key"] for b in usage(team, "ops", key="carol")[1]["budgets"]] == ["carol"]
    assert usage(team, "alice")[1]["budgets"] == []


def test_usage_is_filtered_by_model_and_dates(team, upstream):
    store = team.application.extensions["ollama_openai"].usage
    for day in ("2025-01-31", "2025-02-01", "2025-02-28", "2025-03-01"):
        store.record(Usage(day, "alice", "llama3.2", 1, 1, 1))
        store.record(Usage(day, "alice", "qwen3:8b", 1, 1, 1))
    status, body = usage(team, start="2025-02-01", end="2025-02-28", model="qwen3:8b")
    assert status == 200
    assert (body["start"], body["end"]) == ("2025-02-01", "2025-02-28")
    assert [(row["date"], row["model"]) for row in body["data"]] == [
        ("2025-02-01", "qwen3:8b"),
        ("2025-02-28", "qwen3:8b"),
    ]
    # Without start: the first day of end's month; without end: today.
    assert usage(team, end="2025-03-15")[1]["start"] == "2025-03-01"
    assert usage(team)[1]["end"] == today()


@pytest.mark.parametrize(
    ("query", "param", "code"),
    [
        ({"start": "2025-1-1"}, "start", "invalid_value"),
        ({"end": "2025-02-30"}, "end", "invalid_value"),
        ({"start": "2025-03-01", "end": "2025-02-01"}, "start", "invalid_value"),
        ({"start": "2024-01-01", "end": "2025-01-02"}, "start", "invalid_value"),
        ({"models": "llama3.2"}, "models", "unknown_parameter"),
    ],
)
def test_bad_usage_queries_are_400_naming_the_parameter(team, query, param, code):
    status, body = usage(team, **query)
    assert status == 400
    assert (body["error"]["param"], body["error"]["code"]) == (param, code)


@pytest.fixture
def refusing_port():
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


def test_a_ledger_that_does_not_answer_serves_requests_and_logs(
    settings, tmp_path, upstream, refusing_port, gateway_log
):
    (tmp_path / "team.toml").write_text(TEAM)
    down = dataclasses.replace(
        settings,
        team_keys_file=str(tmp_path / "team.toml"),
        usage_store_uri=f"redis://:hunter2@127.0.0.1:{refusing_port}/0",
    )
    client = create_app(down).test_client()
    assert call(client, "bob").status_code == 200
    assert "budgets and concurrency unchecked" in gateway_log.text
    assert "usage not recorded" in gateway_log.text
    status, body = usage(client)
    assert (status, body["error"]["code"]) == (503, "store_unavailable")
    assert "hunter2" not in gateway_log.text + json.dumps(body)


# --- End-to-end: the official SDK, gunicorn, Redis ---


def team_file(tmp_path_factory):
    # The stand-in reads at least 10 prompt tokens: one answer spends bob's day.
    path = tmp_path_factory.mktemp("team") / "team.toml"
    path.write_text(TEAM.replace("daily_tokens = 20", "daily_tokens = 10"))
    return str(path)


@pytest.fixture(scope="module")
def budget_gateway(gateway_factory, ollama_url, tmp_path_factory):
    return gateway_factory(
        ollama_url, TEAM_KEYS_FILE=team_file(tmp_path_factory), WEB_CONCURRENCY="2"
    )


def sdk(gateway, name, **options):
    options.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEYS[name], **options)


def ledger(gateway, name="ops", **query):
    answer = requests.get(
        f"{gateway.url}/v1/usage", headers=headers(name), params=query, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_sdk_gets_insufficient_quota_once_streams_spent_the_budget(budget_gateway, ollama):
    # The SDK retries 429s by default: this one it must not.
    with sdk(budget_gateway, "bob", max_retries=2) as bob:
        stream = bob.chat.completions.create(
            model="llama3.2", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        spent = list(stream)[-1].usage.total_tokens
        assert spent >= 10
        # Charged as the answer closes, a moment after the client has its last byte.
        assert eventually(lambda: ledger(budget_gateway, "bob")["total"]["total_tokens"]) == spent
        sent = len(ollama.requests)
        with pytest.raises(openai.RateLimitError) as caught:
            bob.chat.completions.create(model="llama3.2", messages=HELLO)
    assert caught.value.code == "insufficient_quota"
    assert caught.value.body["type"] == "insufficient_quota"
    assert "daily budget of 10 tokens" in caught.value.message
    assert caught.value.response.request.headers["x-stainless-retry-count"] == "0"
    assert len(ollama.requests) == sent
    # The streamed usage is in the ledger, once.
    row = ledger(budget_gateway, "bob")["data"][0]
    assert (row["key"], row["requests"], row["total_tokens"]) == ("bob", 1, spent)


def test_admin_reads_everyones_usage_and_the_others_their_own(budget_gateway, ollama):
    with sdk(budget_gateway, "alice") as alice, sdk(budget_gateway, "ops") as ops:
        alice.embeddings.create(model="nomic-embed-text", input="x")
        ops.completions.create(model="qwen3:8b", prompt="x")
    assert {(row["key"], row["model"]) for row in ledger(budget_gateway, "alice")["data"]} == {
        ("alice", "nomic-embed-text")
    }
    everyone = {(row["key"], row["model"]) for row in ledger(budget_gateway, "ops")["data"]}
    assert {("alice", "nomic-embed-text"), ("ops", "qwen3:8b")} <= everyone
    denied = requests.get(
        f"{budget_gateway.url}/v1/usage",
        headers=headers("alice"),
        params={"key": "ops"},
        timeout=10,
    )
    assert denied.status_code == 403


@pytest.fixture(scope="module")
def twin_gateways(gateway_factory, ollama_url, redis_url, tmp_path_factory):
    # A prefix-free Redis database of their own, so other tests' ledgers do not mix in.
    env = {
        "TEAM_KEYS_FILE": team_file(tmp_path_factory),
        "USAGE_STORE_URI": redis_url.rsplit("/", 1)[0] + "/5",
        "RATE_LIMIT_STORAGE_URI": redis_url,
    }
    return gateway_factory(ollama_url, **env), gateway_factory(ollama_url, **env)


def test_two_gateways_on_one_redis_share_one_budget(twin_gateways, ollama):
    first, second = twin_gateways
    with sdk(first, "bob") as bob:
        bob.chat.completions.create(model="llama3.2", messages=HELLO)
    # Charged by the first instance as the answer closes, a moment after the client has it.
    assert eventually(lambda: ledger(second, "bob")["data"])
    with sdk(second, "bob") as bob, pytest.raises(openai.RateLimitError) as caught:
        bob.chat.completions.create(model="llama3.2", messages=HELLO)
    assert caught.value.code == "insufficient_quota"
    # Either instance shows the one ledger.
    assert ledger(first)["data"] == ledger(second)["data"]


def test_a_worker_killed_mid_run_loses_no_finished_requests_usage(
    gateway_factory, ollama_url, ollama, tmp_path_factory
):
    gateway = gateway_factory(ollama_url, TEAM_KEYS_FILE=team_file(tmp_path_factory))
    spent = 0
    with sdk(gateway, "alice") as alice:
        for number in range(6):
            if number % 2:
                stream = alice.chat.completions.create(
                    model="llama3.2",
                    messages=HELLO,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                # Read to its end, [DONE] and all: the answer is finished for the client.
                spent += list(stream)[-1].usage.total_tokens
            else:
                spent += alice.chat.completions.create(
                    model="llama3.2", messages=HELLO
                ).usage.total_tokens
        # One more stream is running, slowly, when the worker dies.
        (worker,) = gateway.workers()
        ollama.token_interval = 0.2
        running = alice.chat.completions.create(model="llama3.2", messages=HELLO, stream=True)
        next(iter(running))
        os.kill(worker, signal.SIGKILL)
        with pytest.raises(openai.APIConnectionError):
            list(running)
    ollama.token_interval = 0
    assert eventually(gateway.workers, lambda pids: pids and pids != [worker], 30)
    total = ledger(gateway)["total"]
    assert (total["requests"], total["total_tokens"]) == (6, spent)
