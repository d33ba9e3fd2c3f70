"""Named keys (TEAM_KEYS_FILE): the models each may use, admin-only paths, a key's own rate
limit, its requests at once, and the bound on wrong keys from one address."""

import dataclasses
import hashlib
import json

import openai
import pytest
import responses

from ollama_openai import auth, create_app, quotas
from ollama_openai.config import ConfigError
from ollama_openai.models_file import read_models_file
from tests.conftest import eventually

OLLAMA = "http://ollama.test:11434"
KEYS = {"alice": "sk-alice-0123456789", "bob": "sk-bob-0123456789", "ops": "sk-ops-0123456789"}
TEAM = f"""
[keys.alice]
sha256 = "{hashlib.sha256(KEYS["alice"].encode()).hexdigest()}"
models = ["llama3.2", "nomic-*"]
rate_limit = "3/minute"

[keys.bob]
sha256 = "{hashlib.sha256(KEYS["bob"].encode()).hexdigest()}"
daily_tokens = 20
max_concurrent = 1

[keys.ops]
sha256 = "{hashlib.sha256(KEYS["ops"].encode()).hexdigest()}"
admin = true
"""
TAGS = {
    "models": [
        {"name": "llama3.2:latest", "modified_at": "2025-05-01T10:00:00Z"},
        {"name": "qwen3:8b", "modified_at": "2025-05-01T10:00:00Z"},
        {"name": "nomic-embed-text:latest", "modified_at": "2025-05-01T10:00:00Z"},
    ]
}
HELLO = [{"role": "user", "content": "Hi"}]


def headers(name):
    return {"Authorization": f"Bearer {KEYS[name]}"}


def chat_lines(*pieces):
    """Ollama's streamed /api/chat: a line per piece, then the done line with its counts."""
    lines = [
        {"model": "m", "message": {"role": "assistant", "content": piece}, "done": False}
        for piece in pieces
    ]
    lines.append(
        {
            "model": "m",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 7,
            "eval_count": len(pieces),
        }
    )
    return "".join(json.dumps(line) + "\n" for line in lines)


@pytest.fixture
def team_settings(settings, tmp_path):
    path = tmp_path / "team.toml"
    path.write_text(TEAM)
    aliases = (("gpt-4o", "qwen3:8b"),)
    return dataclasses.replace(
        settings,
        team_keys_file=str(path),
        model_aliases=aliases,
        models=read_models_file("", aliases),
    )


@pytest.fixture
def team(team_settings):
    return create_app(team_settings).test_client()


@pytest.fixture
def upstream():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{OLLAMA}/api/tags", json=TAGS)
        yield mock


# --- Models ---


def test_the_model_list_shows_only_the_keys_models(team, upstream):
    def listed(name):
        return [model["id"] for model in team.get("/v1/models", headers=headers(name)).json["data"]]

    assert listed("alice") == ["llama3.2:latest", "nomic-embed-text:latest"]
    # A key without a models list sees every model and alias.
    assert listed("ops") == ["llama3.2:latest", "qwen3:8b", "nomic-embed-text:latest", "gpt-4o"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"messages": HELLO}),
        ("/v1/chat/completions", {"messages": HELLO, "stream": True}),
        ("/v1/completions", {"prompt": "Hi"}),
        ("/v1/embeddings", {"input": "Hi"}),
        ("/v1/responses", {"input": "Hi"}),
        ("/v1/responses", {"input": "Hi", "stream": True}),
    ],
)
@pytest.mark.parametrize("model", ["qwen3:8b", "gpt-4o"])
def test_a_forbidden_model_is_the_404_of_a_missing_one(team, upstream, path, body, model):
    # Ollama answers 404 for a model it does not have; the gateway must answer the same for a
    # model the key may not use, without asking Ollama.
    for endpoint in ("chat", "generate", "embed"):
        upstream.post(f"{OLLAMA}/api/{endpoint}", status=404, json={"error": "model not found"})
    # "nomic-gone" is a model alice may use (nomic-*), which Ollama does not have.
    missing = team.post(path, json={**body, "model": "nomic-gone"}, headers=headers("alice"))
    forbidden = team.post(path, json={**body, "model": model}, headers=headers("alice"))
    assert (missing.status_code, forbidden.status_code) == (404, 404)
    expected = json.loads(missing.get_data(as_text=True).replace("nomic-gone", model))
    assert forbidden.json == expected
    assert expected["error"]["code"] == "model_not_found"
    # Ollama was asked about the missing model only: never about the forbidden one.
    asked = {json.loads(call.request.body)["model"] for call in upstream.calls if call.request.body}
    assert asked == {"nomic-gone"}


@pytest.mark.parametrize("model", ["qwen3:8b", "gpt-4o"])
def test_retrieving_a_forbidden_model_is_the_404_of_a_missing_one(team, upstream, model):
    missing = team.get("/v1/models/nomic-gone", headers=headers("alice"))
    forbidden = team.get(f"/v1/models/{model}", headers=headers("alice"))
    assert forbidden.status_code == 404
    assert forbidden.json == json.loads(missing.get_data(as_text=True).replace("nomic-gone", model))
    assert team.get(f"/v1/models/{model}", headers=headers("ops")).status_code == 200


def test_an_allowed_model_is_answered(team, upstream):
    upstream.post(f"{OLLAMA}/api/chat", body=chat_lines("Hello"))
    answer = team.post(
        "/v1/chat/completions",
        json={"model": "llama3.2", "messages": HELLO, "stream": True},
        headers=headers("alice"),
    )
    assert answer.status_code == 200
    assert b"Hello" in answer.get_data()


# --- Admin paths ---


def test_metrics_need_an_admin_key(team):
    denied = team.get("/metrics", headers=headers("alice"))
    assert denied.status_code == 403
    assert denied.json["error"] == {
        "message": "The key 'alice' may not read /metrics: it needs an admin key.",
        "type": "invalid_request_error",
        "param": None,
        "code": "permission_denied",
    }
    assert team.get("/metrics", headers=headers("ops")).status_code == 200


def test_keys_without_a_policy_keep_every_right(team_settings, upstream):
    client = create_app(dataclasses.replace(team_settings, api_keys=("sk-legacy",))).test_client()
    key = {"x-api-key": "sk-legacy"}
    assert client.get("/metrics", headers=key).status_code == 200
    assert len(client.get("/v1/models", headers=key).json["data"]) == 4


# --- A key's own limits ---


def test_a_key_has_its_own_rate_limit_over_rate_limit(team_settings, upstream):
    client = create_app(dataclasses.replace(team_settings, rate_limit="100/minute")).test_client()
    alice = [client.get("/v1/models", headers=headers("alice")) for _ in range(4)]
    assert [answer.status_code for answer in alice] == [200, 200, 200, 429]
    assert alice[0].headers["x-ratelimit-limit-requests"] == "3"
    assert alice[3].json["error"]["code"] == "rate_limit_exceeded"
    # Bob has no limit of his own: RATE_LIMIT.
    bob = client.get("/v1/models", headers=headers("bob"))
    assert bob.headers["x-ratelimit-limit-requests"] == "100"


def test_a_key_with_its_own_limit_is_limited_without_rate_limit(team, upstream):
    statuses = [team.get("/v1/models", headers=headers("alice")).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert (
        "x-ratelimit-limit-requests" not in team.get("/v1/models", headers=headers("ops")).headers
    )


def test_a_key_has_at_most_max_concurrent_requests_in_flight(team, upstream):
    upstream.post(f"{OLLAMA}/api/chat", body=chat_lines("a", "b"))
    body = {"model": "llama3.2", "messages": HELLO, "stream": True}
    first = team.post("/v1/chat/completions", json=body, headers=headers("bob"))
    assert first.status_code == 200
    # The first stream is still open: its slot is held.
    second = team.post("/v1/chat/completions", json=body, headers=headers("bob"))
    assert second.status_code == 429
    assert second.json["error"]["code"] == "rate_limit_exceeded"
    assert "has 1 requests in flight" in second.json["error"]["message"]
    assert second.headers["Retry-After"] == "1"
    # Other keys, and other endpoints of the same key, are not held back.
    assert team.post("/v1/chat/completions", json=body, headers=headers("ops")).status_code == 200
    assert team.get("/v1/models", headers=headers("bob")).status_code == 200
    first.close()
    third = team.post("/v1/chat/completions", json=body, headers=headers("bob"))
    assert third.status_code == 200
    third.close()


def test_a_refused_request_gives_its_slot_back(team, upstream):
    # A request the view refuses (a 400) must not keep its slot.
    for _ in range(3):
        bad = team.post("/v1/chat/completions", json={"model": "llama3.2"}, headers=headers("bob"))
        assert bad.status_code == 400
        # The server closes every answer (the slot goes back then); the test client leaves that
        # to its caller.
        bad.close()


# --- Wrong keys from one address ---


def wrong_key_client(team_settings, limit="3/minute"):
    settings = dataclasses.replace(team_settings, auth_failure_limit=limit)
    return create_app(settings).test_client()


def test_an_address_that_sends_wrong_keys_is_held_back(team_settings, upstream):
    client = wrong_key_client(team_settings)
    attacker = {"REMOTE_ADDR": "10.0.0.66"}
    wrong = [
        client.get("/v1/models", headers={"x-api-key": f"sk-guess-{n}"}, environ_base=attacker)
        for n in range(3)
    ]
    assert {answer.status_code for answer in wrong} == {401}
    # Over the bound: a 429 whatever the key, even a right one, so guessing stops.
    for key in ("sk-guess-4", KEYS["alice"]):
        held = client.get("/v1/models", headers={"x-api-key": key}, environ_base=attacker)
        assert held.status_code == 429
        assert held.json["error"]["code"] == "rate_limit_exceeded"
        assert held.json["error"]["message"].startswith("Too many wrong API keys from this address")
        assert 1 <= int(held.headers["Retry-After"]) <= 60
    # Other addresses are not held back.
    other = client.get(
        "/v1/models", headers=headers("alice"), environ_base={"REMOTE_ADDR": "10.0.0.7"}
    )
    assert other.status_code == 200


def test_a_missing_key_is_not_a_wrong_one(team_settings, upstream):
    client = wrong_key_client(team_settings)
    for _ in range(5):
        assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models", headers=headers("alice")).status_code == 200


def test_wrong_keys_are_unbounded_when_the_limit_is_empty(team_settings, upstream):
    client = wrong_key_client(team_settings, limit="")
    for n in range(30):
        assert client.get("/v1/models", headers={"x-api-key": f"sk-{n}"}).status_code == 401


def test_a_bad_team_file_stops_create_app(settings, tmp_path):
    (tmp_path / "team.toml").write_text("[keys.x]\nsha256 = 'nothex'\n")
    with pytest.raises(ConfigError, match=r"keys\.x\.sha256"):
        create_app(dataclasses.replace(settings, team_keys_file=str(tmp_path / "team.toml")))


# --- End-to-end: the official SDK against gunicorn ---


@pytest.fixture(scope="module")
def team_gateway(gateway_factory, ollama_url, tmp_path_factory):
    path = tmp_path_factory.mktemp("team") / "team.toml"
    path.write_text(TEAM.replace('"3/minute"', '"500/minute"'))
    return gateway_factory(
        ollama_url, TEAM_KEYS_FILE=str(path), MODEL_ALIASES="gpt-4o=qwen3:8b", WEB_CONCURRENCY="2"
    )


def sdk(gateway, name):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEYS[name], max_retries=0)


@pytest.mark.parametrize(
    "call",
    [
        lambda c, m: c.chat.completions.create(model=m, messages=HELLO),
        lambda c, m: c.chat.completions.create(model=m, messages=HELLO, stream=True),
        lambda c, m: c.completions.create(model=m, prompt="Hi"),
        lambda c, m: c.embeddings.create(model=m, input="Hi"),
        lambda c, m: c.responses.create(model=m, input="Hi"),
        lambda c, m: c.models.retrieve(m),
    ],
    ids=["chat", "chat-stream", "completions", "embeddings", "responses", "retrieve"],
)
def test_the_sdk_sees_not_found_for_a_forbidden_model(team_gateway, ollama, call):
    with sdk(team_gateway, "alice") as alice:
        with pytest.raises(openai.NotFoundError) as forbidden:
            call(alice, "qwen3:8b")
        with pytest.raises(openai.NotFoundError) as missing:
            call(alice, "nomic-gone:1b")
    assert forbidden.value.code == missing.value.code == "model_not_found"
    assert forbidden.value.message == missing.value.message.replace("nomic-gone:1b", "qwen3:8b")
    assert not [r for r in ollama.requests if (r.body or {}).get("model") == "qwen3:8b"]


def test_the_sdk_lists_the_keys_models_and_logs_its_name(team_gateway, ollama):
    with sdk(team_gateway, "alice") as alice, sdk(team_gateway, "ops") as ops:
        assert [model.id for model in alice.models.list()] == [
            "llama3.2:latest",
            "nomic-embed-text:latest",
        ]
        assert "qwen3:8b" in [model.id for model in ops.models.list()]
        alice.chat.completions.create(model="llama3.2", messages=HELLO)

    def answered(text):
        return [line for line in text.splitlines() if "key=alice" in line and "status=200" in line]

    log = eventually(team_gateway.log, lambda text: any("/v1/chat" in x for x in answered(text)))
    line = next(line for line in answered(log) if "/v1/chat" in line)
    assert "model=llama3.2" in line
    assert not any(key in log for key in KEYS.values())


def test_the_endpoints_named_by_keys_and_budgets_are_the_apps(app):
    # Named by string: a renamed view must not slip out of budgets or the admin check.
    assert set(app.view_functions) >= quotas.GENERATING_ENDPOINTS | auth.ADMIN_ENDPOINTS
