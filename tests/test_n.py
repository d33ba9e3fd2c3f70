"""Several choices per request: chat ``n``, completion prompt lists; run concurrently, streamed
interleaved with their index, usage summed, and the relay's guarantees kept for all of them."""

import dataclasses
import json
import threading

import openai
import pytest
import requests

from ollama_openai import create_app
from ollama_openai.errors import ApiError
from ollama_openai.exchange import Exchange
from ollama_openai.pumps import CLIENT_GONE, UpstreamPumps
from ollama_openai.streaming import KEEPALIVE_COMMENT, relay
from ollama_openai.translate import chat
from ollama_openai.translate.options import SamplingDefaults, per_choice

DONE_EVENT = b"data: [DONE]\n\n"

HELLO = [{"role": "user", "content": "Say hello"}]


# --- The relay with several fake upstreams. ---


class FakeUpstream:
    """An UpstreamStream that yields given lines, then fails or waits until closed."""

    def __init__(self, lines, *, fail=None, hang=False):
        self._lines = lines
        self._fail = fail
        self._hang = hang
        self.closed = threading.Event()

    def lines(self):
        yield from self._lines
        if self._fail is not None:
            raise self._fail
        if self._hang:
            self.closed.wait(5)

    def abort(self):
        self.closed.set()

    close = abort


def line(text, index_done=False, eval_count=2):
    if index_done:
        return {"message": {"content": ""}, "done": True, "done_reason": "stop",
                "prompt_eval_count": 5, "eval_count": eval_count}  # fmt: skip
    return {"message": {"content": text}, "done": False}


def run_relay(upstreams, include_usage=False, keepalive=5.0):
    pumps = UpstreamPumps([lambda u=u: u for u in upstreams])
    body = {"model": "m", "messages": [], "n": len(upstreams), "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    translator = chat.plan(body, SamplingDefaults(), "m").translator()
    return relay(pumps, translator, keepalive, Exchange("chat.completions"))


def sse_events(chunks):
    """The events of a relay's output, however they were grouped into writes."""
    return [event + b"\n\n" for event in b"".join(chunks).split(b"\n\n") if event]


def decoded(events):
    return [json.loads(event[6:]) for event in events if event.startswith(b"data: {")]


def test_done_comes_after_every_choice_with_one_summed_usage_chunk():
    upstreams = [
        FakeUpstream([line("a"), line("", True, eval_count=2)]),
        FakeUpstream([line("b"), line("c"), line("", True, eval_count=3)]),
    ]
    events = sse_events(run_relay(upstreams, include_usage=True))
    assert events[-1] == DONE_EVENT
    chunks = decoded(events)
    finishes = [
        c["choices"][0]["index"]
        for c in chunks
        if c["choices"] and c["choices"][0]["finish_reason"]
    ]
    assert sorted(finishes) == [0, 1]
    usage_chunks = [c for c in chunks if c["choices"] == []]
    assert len(usage_chunks) == 1
    assert chunks[-1] is usage_chunks[0]
    assert usage_chunks[0]["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
    }
    text = {0: "", 1: ""}
    for chunk in chunks:
        for choice in chunk["choices"]:
            text[choice["index"]] += choice["delta"].get("content") or ""
    assert text == {0: "a", 1: "bc"}


def test_one_failing_choice_ends_the_stream_with_an_error_and_closes_all():
    failure = ApiError(502, "Ollama failed: boom", code="upstream_error")
    upstreams = [FakeUpstream([line("a")], hang=True), FakeUpstream([line("b")], fail=failure)]
    events = sse_events(run_relay(upstreams))
    assert DONE_EVENT not in events
    assert json.loads(events[-1][6:])["error"]["code"] == "upstream_error"
    assert all(upstream.closed.wait(2) for upstream in upstreams)


def test_silence_gets_keepalives_and_a_leaving_client_closes_every_upstream():
    upstreams = [FakeUpstream([], hang=True), FakeUpstream([], hang=True)]
    stream = run_relay(upstreams, keepalive=0.05)
    first = [next(stream) for _ in range(3)]  # two role chunks, then silence
    assert first[2] == KEEPALIVE_COMMENT
    stream.close()  # the client hung up
    assert all(upstream.closed.wait(2) for upstream in upstreams)


class _BrokenTranslator:
    """A stream translator with a bug in ``piece``."""

    def start(self):
        return []

    def piece(self, line, index):
        raise KeyError("a bug")

    def fail(self, error):
        return [(None, {"error": error})]


def test_a_bug_while_relaying_ends_the_stream_with_an_error_event(gateway_log):
    pumps = UpstreamPumps([lambda: FakeUpstream([line("Hi")])])
    events = sse_events(relay(pumps, _BrokenTranslator(), 5.0, Exchange("chat.completions")))
    assert json.loads(events[-1].removeprefix(b"data: "))["error"]["code"] == "internal_error"
    assert "unexpected error while relaying a stream" in gateway_log.text


@pytest.mark.parametrize(
    ("options", "seeds"),
    [
        ({}, [None, None, None]),
        ({"seed": 7}, [7, 8, 9]),
        # Ollama reads the seed as Go's int64: the offsets wrap around instead of overflowing.
        ({"seed": 2**63 - 2}, [2**63 - 2, 2**63 - 1, -(2**63)]),
        ({"seed": "7"}, ["7", "7", "7"]),
    ],
)
def test_a_fixed_seed_is_offset_per_choice(options, seeds):
    payloads = per_choice({"model": "m", "options": options}, 3)
    assert [payload["options"].get("seed") for payload in payloads] == seeds


# --- Through the official SDK, against the stand-in. ---


def test_n_choices_run_concurrently_with_summed_usage(openai_client, ollama):
    ollama.reply = "one two three four five"
    ollama.token_interval = 0.1
    answer = openai_client.chat.completions.create(model="llama3.2", messages=HELLO, n=3)
    assert [choice.index for choice in answer.choices] == [0, 1, 2]
    assert all(choice.message.content == "one two three four five" for choice in answer.choices)
    assert len([r for r in ollama.requests if r.path == "/api/chat"]) == 3
    assert answer.usage.completion_tokens == 3 * 5
    # All three ran at once in Ollama (each takes ~0.5 s): not one after the other.
    assert ollama.state()["peak_running"] == 3


def test_n_choices_stream_interleaved_with_their_index(openai_client, ollama):
    ollama.reply = "one two three four"
    ollama.token_interval = 0.05
    stream = openai_client.chat.completions.create(
        model="llama3.2",
        messages=HELLO,
        n=3,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    texts, finishes, order = {}, {}, []
    for chunk in chunks[:-1]:
        (choice,) = chunk.choices
        order.append(choice.index)
        texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
        if choice.finish_reason:
            finishes[choice.index] = choice.finish_reason
    assert texts == dict.fromkeys(range(3), "one two three four")
    assert finishes == dict.fromkeys(range(3), "stop")
    assert order != sorted(order)  # choices interleave as their tokens come
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 3 * 4


def test_one_choice_failing_mid_stream_stops_all(server, ollama):
    ollama.error_after_tokens = 2
    body = {"model": "llama3.2", "messages": HELLO, "n": 2, "stream": True}
    response = requests.post(f"{server.url}/v1/chat/completions", json=body, timeout=10)
    events = [line for line in response.text.splitlines() if line.startswith("data: ")]
    assert "data: [DONE]" not in events
    assert json.loads(events[-1][6:])["error"]["code"] == "upstream_error"


def test_prompt_list_gives_n_choices_per_prompt_in_openai_order(openai_client, ollama):
    answer = openai_client.completions.create(
        model="llama3.2", prompt=["Red", "Blue"], n=2, echo=True
    )
    texts = [choice.text for choice in answer.choices]
    assert [choice.index for choice in answer.choices] == [0, 1, 2, 3]
    assert texts == [f"{p}Completion of: {p}" for p in ("Red", "Red", "Blue", "Blue")]
    prompts = sorted(r.body["prompt"] for r in ollama.requests if r.path == "/api/generate")
    assert prompts == ["Blue", "Blue", "Red", "Red"]


def test_prompt_list_streams_each_choice(openai_client):
    stream = openai_client.completions.create(model="llama3.2", prompt=["Red", "Blue"], stream=True)
    texts, finishes = {}, {}
    for chunk in stream:
        (choice,) = chunk.choices
        texts[choice.index] = texts.get(choice.index, "") + choice.text
        if choice.finish_reason:
            finishes[choice.index] = choice.finish_reason
    assert texts == {0: "Completion of: Red", 1: "Completion of: Blue"}
    assert finishes == {0: "stop", 1: "stop"}


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {"messages": HELLO, "n": 9}, "n"),
        ("/v1/chat/completions", {"messages": HELLO, "n": 0}, "n"),
        ("/v1/completions", {"prompt": ["a", "b", "c"], "n": 3}, "n"),
        ("/v1/completions", {"prompt": ["a"] * 9}, "prompt"),
    ],
)
def test_more_generations_than_max_n_are_a_400(server, ollama, path, body, param):
    response = requests.post(f"{server.url}{path}", json={"model": "llama3.2", **body}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert ollama.requests == []


def test_max_n_setting_bounds_n(settings):
    client = create_app(dataclasses.replace(settings, max_n=2)).test_client()
    response = client.post("/v1/chat/completions", json={"model": "m", "messages": HELLO, "n": 3})
    assert response.status_code == 400
    assert response.json["error"]["param"] == "n"
    assert "between 1 and 2" in response.json["error"]["message"]


def test_one_failing_choice_fails_a_non_streamed_answer(openai_client, ollama):
    ollama.error_after_tokens = 1
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client.chat.completions.create(model="llama3.2", messages=HELLO, n=2)
    assert caught.value.status_code == 502


# --- Lines already waiting go out together. ---


class ReadyPumps:
    """Pumps whose items are all in the mailbox already: a client behind Ollama. With
    ``one_at_a_time`` none is ever ready without waiting, as for a client that keeps up."""

    def __init__(self, items, one_at_a_time=False):
        self.items = list(items)
        self.one_at_a_time = one_at_a_time
        self.closed = False

    def __len__(self):
        return 1

    def get(self, timeout):
        return self.items.pop(0)

    def get_ready(self):
        return None if self.one_at_a_time or not self.items else self.items.pop(0)

    def close(self):
        self.closed = True

    def client_gone(self):
        self.close()


def relay_of(items, one_at_a_time=False):
    body = {"model": "m", "messages": [], "stream": True}
    translator = chat.plan(body, SamplingDefaults(), "m").translator()
    pumps = ReadyPumps(items, one_at_a_time)
    return list(relay(pumps, translator, 5.0, Exchange("chat.completions"))), pumps


def test_waiting_lines_go_out_in_one_write_with_every_event_in_order():
    items = [(0, line(str(n))) for n in range(40)] + [(0, line("", True, eval_count=40))]
    batched, _ = relay_of(items)
    single, _ = relay_of(items, one_at_a_time=True)
    # The role chunk with the first line (at once, alone), then one write for all the other
    # waiting lines, the finish and [DONE]; one at a time, the role chunk on its own, then a
    # write per line (the last with the finish and [DONE]).
    assert len(batched) == 2 and len(single) == 42
    assert batched[0].count(b"data: ") == 2 and single[0].count(b"data: ") == 1
    assert sse_events(batched)[-1] == DONE_EVENT
    assert [c["choices"] for c in decoded(sse_events(batched))] == [
        c["choices"] for c in decoded(sse_events(single))
    ]


def test_a_failure_among_waiting_lines_comes_after_the_lines_before_it():
    failure = ApiError(502, "Ollama failed: boom", code="upstream_error")
    writes, pumps = relay_of([(0, line("a")), (0, line("b")), (0, failure), (0, line("c"))])
    events = sse_events(writes)
    texts = [c["choices"][0]["delta"].get("content") for c in decoded(events[:-1])]
    assert texts == ["", "a", "b"]
    assert json.loads(events[-1][6:])["error"]["code"] == "upstream_error"
    assert DONE_EVENT not in events and pumps.closed


def test_a_client_gone_among_waiting_lines_stops_the_relay_at_once():
    items = [(0, line("a")), (0, line("b")), (0, CLIENT_GONE), (0, line("c"))]
    writes, pumps = relay_of(items)
    # The role chunk and the first line went out before the client left; nothing after.
    assert writes == [writes[0]] and writes[0].count(b"data: ") == 2
    assert b'"b"' not in writes[0]
    assert pumps.closed
