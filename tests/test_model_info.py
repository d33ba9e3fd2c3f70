"""What /api/show and /api/ps tell of a model, how /v1/models shows it, and the per-worker cache
that keeps /api/show off the path of every request."""

import threading

import pytest
import requests
import responses

from ollama_openai.model_info import ModelFactsCache
from ollama_openai.routing import LoadedModel, loaded_models
from ollama_openai.servers import OllamaServers
from ollama_openai.translate.models import ModelDetails, ModelFacts, model_facts
from tests.conftest import FAKE_OLLAMA, eventually

SHOW = {
    "parameters": f'{"num_ctx":<30} 16384\n{"stop":<30} "<|eot_id|>"',
    "model_info": {"general.architecture": "qwen3", "qwen3.context_length": 40960},
    "capabilities": ["completion", "tools", "thinking"],
}


def test_show_gives_capabilities_maximum_and_modelfile_window():
    assert model_facts(SHOW) == ModelFacts(("completion", "tools", "thinking"), 40960, 16384)
    # Older servers: no capabilities, no context length; nothing is guessed.
    assert model_facts({"parameters": "", "model_info": {}}) == ModelFacts(None, None, None)


def test_ps_gives_each_loaded_models_window_and_unload_time():
    answer = {
        "models": [
            {
                "name": "qwen3:8b",
                "model": "qwen3:8b",
                "expires_at": "2025-05-01T10:05:00.123456789-07:00",
                "size_vram": 5000,
                "context_length": 32768,
            },
            {"model": "llama3.2"},
        ]
    }
    assert loaded_models(answer) == {
        "qwen3:8b": LoadedModel("qwen3:8b", 32768, 1746119100, 5000),
        "llama3.2:latest": LoadedModel("llama3.2:latest", None, None, None),
    }


@pytest.mark.parametrize(
    ("num_ctx", "facts", "context_length"),
    [
        (32768, ModelFacts(("completion",), 40960, 8192), 32768),  # the models file's
        (None, ModelFacts(("completion",), 40960, 8192), 8192),  # the Modelfile's
        (65536, ModelFacts(("completion",), 40960, None), 40960),  # at most the maximum
        (None, ModelFacts(("completion",), 40960, None), None),  # Ollama's default: unknown
        (None, None, None),  # /api/show failed
    ],
)
def test_the_listed_context_length_is_the_window_a_request_gets(num_ctx, facts, context_length):
    fields = ModelDetails(facts, num_ctx).fields()
    assert fields["context_length"] == context_length
    assert (fields["loaded"], fields["loaded_on"]) == (False, [])


def test_loaded_models_are_listed_with_their_servers():
    loaded = [("http://gpu-1:11434", LoadedModel("m:latest", 8192, 1_800_000_000))]
    fields = ModelDetails(ModelFacts(), None, loaded).fields()
    assert fields["loaded"] is True
    assert fields["loaded_on"] == [
        {"server": "http://gpu-1:11434", "context_length": 8192, "expires_at": 1_800_000_000}
    ]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def cache(clock):
    servers = OllamaServers([FAKE_OLLAMA], timeout=2, connect_timeout=1)
    return ModelFactsCache(servers, max_age=30, clock=clock)


def shows(mock):
    return sum(call.request.url.endswith("/api/show") for call in mock.calls)


@responses.activate
def test_facts_are_read_once_then_kept_for_the_refresh_interval(cache, clock):
    responses.post(f"{FAKE_OLLAMA}/api/show", json=SHOW)
    for name in ("qwen3:8b", "qwen3:8b", "qwen3:8b"):
        assert cache.facts(name).capabilities == ("completion", "tools", "thinking")
    assert shows(responses) == 1
    clock.now += 31
    cache.facts("qwen3:8b")
    assert shows(responses) == 2


@responses.activate
def test_facts_read_for_a_digest_stay_until_the_digest_changes(cache, clock):
    responses.post(f"{FAKE_OLLAMA}/api/show", json=SHOW)
    cache.facts("qwen3:8b", digest="aaa")
    clock.now += 3600
    cache.facts("qwen3:8b", digest="aaa")
    assert shows(responses) == 1
    cache.facts("qwen3:8b", digest="bbb")  # pulled again: read again
    assert shows(responses) == 2


@responses.activate
def test_a_failed_read_is_not_kept(cache):
    responses.post(f"{FAKE_OLLAMA}/api/show", body=requests.ConnectionError("refused"))
    assert cache.facts("qwen3:8b") is None
    responses.replace(responses.POST, f"{FAKE_OLLAMA}/api/show", json=SHOW)
    assert cache.facts("qwen3:8b") is not None


def test_callers_arriving_during_a_read_share_it(clock):
    release = threading.Event()
    calls = []

    class SlowServers:
        def show(self, model):
            calls.append(model)
            release.wait(5)
            return SHOW

    cache = ModelFactsCache(SlowServers(), max_age=30, clock=clock)  # type: ignore[arg-type]
    entered, results = [], []

    def ask():
        entered.append(True)
        results.append(cache.facts("qwen3:8b"))

    threads = [threading.Thread(target=ask) for _ in range(5)]
    for thread in threads:
        thread.start()
    eventually(lambda: len(entered), lambda count: count == 5)
    # Were each caller to read for itself, more reads would start now, while the first waits.
    eventually(lambda: len(calls), lambda count: count > 1, timeout=0.3)
    release.set()
    for thread in threads:
        thread.join(5)
    assert calls == ["qwen3:8b"]
    assert len(results) == 5 and all(facts == results[0] is not None for facts in results)


@responses.activate
def test_an_unknown_model_has_no_facts(cache):
    responses.post(f"{FAKE_OLLAMA}/api/show", status=404, json={"error": "model 'x' not found"})
    assert cache.facts("x") is None
