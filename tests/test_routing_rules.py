"""The routing rules on plain tables, no server: where ``place`` sends a call, each worker's share
of the slots, what a server's URL shows, how a conversation is known and remembered, the fair
queue (``Admission``) and the routing settings. tests/test_routing.py runs them on stand-ins.
"""

import itertools
import threading
import time

import pytest

from ollama_openai.admission import DEFAULT_LOAD_SECONDS, Admission
from ollama_openai.affinity import Conversations, conversation_key
from ollama_openai.config import ConfigError, Settings
from ollama_openai.errors import ApiError
from ollama_openai.routing import (
    AFFINITY,
    COLD,
    LOADED,
    LoadedModel,
    ServerState,
    Slots,
    place,
    public_url,
    worker_share,
)
from tests.conftest import eventually

A, B, C = "http://gpu-a.test:11434", "http://gpu-b.test:11434", "http://gpu-c.test:11434"
MODEL = "llama3.2:latest"
OTHER = "qwen3:8b"
# The monotonic "now" the tables are read at; a back-off until LATER is still running.
NOW, LATER = 1000.0, 2000.0
# /api/ps expiries: place() reads them against the wall clock, which no test can move.
FUTURE = int(time.time()) + 3600
PAST = int(time.time()) - 3600


def server(url, loaded=(), running=None, in_flight=0, last_chosen=0, expires_at=FUTURE, **state):
    """A server listing MODEL and OTHER, whose /api/ps lists ``loaded``."""
    return ServerState(
        url,
        models=frozenset({MODEL, OTHER, "phi4:latest", "gemma3:latest"}),
        loaded={name: LoadedModel(name, 4096, expires_at) for name in loaded},
        running=dict(running or {}),
        in_flight=in_flight,
        last_chosen=last_chosen,
        **state,
    )


def one_slot(state):
    return 1


def placed(states, **options):
    """Where ``place`` sends a call to MODEL, as (url, reason); None: it waits."""
    placement = place(states, MODEL, NOW, options.pop("slots", one_slot), **options)
    return None if placement is None else (placement.state.url, placement.reason)


# place: warm first.


def test_a_warm_server_with_a_free_slot_wins_over_an_idle_cold_one():
    busy_warm = server(A, loaded=[MODEL], in_flight=3, running={OTHER: 3})
    idle_cold = server(B)
    assert placed([idle_cold, busy_warm]) == (A, LOADED)


def test_among_warm_servers_the_fewest_in_flight_wins():
    states = [
        server(A, loaded=[MODEL], in_flight=2, running={OTHER: 2}),
        server(B, loaded=[MODEL], in_flight=1, running={OTHER: 1}),
        server(C, loaded=[MODEL], in_flight=3, running={OTHER: 3}),
    ]
    assert placed(states) == (B, LOADED)


@pytest.mark.parametrize(("a_chosen", "b_chosen", "expected"), [(5, 3, B), (3, 5, A)])
def test_warm_servers_tied_on_in_flight_take_turns(a_chosen, b_chosen, expected):
    states = [
        server(A, loaded=[MODEL], last_chosen=a_chosen),
        server(B, loaded=[MODEL], last_chosen=b_chosen),
    ]
    assert placed(states) == (expected, LOADED)


def test_a_call_waits_for_a_warm_slot_rather_than_loading_the_model_again():
    full_warm = server(A, loaded=[MODEL], in_flight=1, running={MODEL: 1})
    idle_cold = server(B)
    assert placed([full_warm, idle_cold]) is None


def test_spill_sends_the_call_to_a_cold_server_when_the_warm_ones_are_full():
    full_warm = server(A, loaded=[MODEL], in_flight=1, running={MODEL: 1})
    idle_cold = server(B)
    assert placed([full_warm, idle_cold], spill=True) == (B, COLD)


def test_spill_never_lands_on_a_server_busy_with_another_model():
    # A load there would wait for the other model's calls, then evict it from under its queue.
    full_warm = server(A, loaded=[MODEL], in_flight=1, running={MODEL: 1})
    busy_cold = server(B, loaded=[OTHER], in_flight=1, running={OTHER: 1})
    assert placed([full_warm, busy_cold], spill=True) is None
    assert placed([full_warm, busy_cold, server(C)], spill=True) == (C, COLD)


def test_spill_waits_when_no_cold_server_has_a_free_slot_either():
    full_warm = server(A, loaded=[MODEL], in_flight=1, running={MODEL: 1})
    assert placed([full_warm], spill=True) is None


def test_a_slot_count_above_one_leaves_room_beside_a_running_call():
    warm = server(A, loaded=[MODEL], in_flight=1, running={MODEL: 1})
    assert placed([warm, server(B)], slots=lambda state: 2) == (A, LOADED)


def test_with_the_model_warm_nowhere_the_cold_server_with_most_room_loads_it():
    states = [
        server(A, loaded=[OTHER, "phi4:latest"]),
        server(B, loaded=["gemma3:latest"]),
        server(C, loaded=[OTHER, "phi4:latest", "gemma3:latest"]),
    ]
    assert placed(states) == (B, COLD)


def test_a_server_that_does_not_list_the_model_is_never_chosen():
    lists_other = ServerState(A, models=frozenset({OTHER}), loaded={})
    assert placed([lists_other]) is None
    assert placed([lists_other, server(B, loaded=[OTHER, "phi4:latest"])]) == (B, COLD)


# place: what counts as warm.


@pytest.mark.parametrize(("expires_at", "reason"), [(PAST, COLD), (FUTURE, LOADED), (None, LOADED)])
def test_an_expired_api_ps_entry_counts_as_cold(expires_at, reason):
    assert placed([server(A, loaded=[MODEL], expires_at=expires_at)]) == (A, reason)


def test_a_live_entry_wins_over_an_expired_one_with_fewer_in_flight():
    expired = server(A, loaded=[MODEL], expires_at=PAST)
    live = server(B, loaded=[MODEL], in_flight=2, running={OTHER: 2})
    assert placed([expired, live]) == (B, LOADED)


def test_a_model_sent_since_the_last_api_ps_counts_as_warm():
    loading = server(A, in_flight=2, running={OTHER: 2}, sent=frozenset({MODEL}))
    assert placed([server(B), loading]) == (A, LOADED)


@pytest.mark.parametrize("back_off", ["down_until", "busy_until"])
def test_a_down_or_busy_server_is_skipped_even_with_the_model_warm(back_off):
    skipped = server(A, loaded=[MODEL], **{back_off: LATER})
    assert placed([skipped, server(B)]) == (B, COLD)
    assert placed([skipped]) is None


def test_a_back_off_that_has_ended_no_longer_skips_the_server():
    back = server(A, loaded=[MODEL], down_until=NOW - 1, busy_until=NOW - 1)
    assert placed([back, server(B)]) == (A, LOADED)


# place: the conversation's server, and exclusions.


def test_the_conversations_server_goes_first_among_warm_ones():
    states = [
        server(A, loaded=[MODEL]),
        server(B, loaded=[MODEL], in_flight=3, running={OTHER: 3}),
    ]
    assert placed(states, prefer=B) == (B, AFFINITY)


def test_the_conversations_server_goes_first_among_cold_ones():
    states = [server(A), server(B, loaded=[OTHER, "phi4:latest"])]
    assert placed(states, prefer=B) == (B, AFFINITY)


def test_a_cold_conversation_server_does_not_beat_a_warm_free_one():
    states = [server(A, loaded=[MODEL]), server(B)]
    assert placed(states, prefer=B) == (A, LOADED)


@pytest.mark.parametrize(
    "preferred",
    [
        {"in_flight": 1, "running": {MODEL: 1}},
        {"down_until": LATER},
        {"busy_until": LATER},
    ],
    ids=["full", "down", "busy"],
)
def test_the_conversations_server_is_not_taken_when_full_down_or_busy(preferred):
    states = [server(A, loaded=[MODEL], **preferred), server(B, loaded=[MODEL])]
    assert placed(states, prefer=A) == (B, LOADED)


def test_an_excluded_server_is_not_chosen_even_when_warm():
    states = [server(A, loaded=[MODEL]), server(B)]
    assert placed(states, exclude=(A,)) == (B, COLD)
    assert placed(states, exclude=(A, B)) is None


# Slots: each worker's share.


@pytest.mark.parametrize(
    ("slots", "worker", "workers", "share"),
    [
        (4, 0, 2, 2),
        (4, 1, 2, 2),
        (5, 0, 2, 3),
        (5, 1, 2, 2),
        (7, 0, 3, 3),
        (7, 1, 3, 2),
        (7, 2, 3, 2),
        # Fewer slots than workers: each still gets one, or it could serve nobody.
        (1, 0, 4, 1),
        (1, 3, 4, 1),
        (2, 0, 1, 2),
        (3, 0, 0, 3),
    ],
)
def test_worker_share_spreads_slots_evenly_remainder_first(slots, worker, workers, share):
    assert worker_share(slots, worker, workers) == share


def test_worker_shares_add_up_to_the_servers_slots():
    for slots, workers in itertools.product(range(1, 11), range(1, 6)):
        shares = [worker_share(slots, worker, workers) for worker in range(workers)]
        assert sum(shares) == max(slots, workers), (slots, workers, shares)


def test_a_models_slots_beat_the_servers_which_beat_the_default():
    slots = Slots(default=1, servers={A: 4}, models={MODEL: 6}, worker=1, workers=2)
    assert (slots.total(A, MODEL), slots.total(A, OTHER), slots.total(B, OTHER)) == (6, 4, 1)
    assert (slots.of(A, MODEL), slots.of(A, OTHER), slots.of(B, OTHER)) == (3, 2, 1)
    assert slots.total(B, MODEL) == 6


# public_url: what answers and logs may show.


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://ollama:secret@gpu-a.test:11434", "http://gpu-a.test:11434"),
        ("https://token@ollama.example/gpu/a", "https://ollama.example/gpu/a"),
        ("http://gpu-a.test:11434/ollama", "http://gpu-a.test:11434/ollama"),
        ("https://ollama.example", "https://ollama.example"),
        ("http://[::1]:11434", "http://[::1]:11434"),
        ("http://user:pw@[fd00::7]:8080/base", "http://[fd00::7]:8080/base"),
    ],
)
def test_public_url_drops_user_and_password_and_keeps_the_rest(url, shown):
    assert public_url(url) == shown


# conversation_key: how a conversation is known.

SYSTEM = {"role": "system", "content": "You are terse."}
HELLO = {"role": "user", "content": "Hello"}
OPENING = [SYSTEM, HELLO]
LATER_TURNS = [{"role": "assistant", "content": "Hi."}, {"role": "user", "content": "And?"}]


def chat_key(body=None, messages=OPENING, model=MODEL):
    return conversation_key(model, body or {}, {"model": model, "messages": messages})


def test_prompt_cache_key_comes_before_user_and_safety_identifier():
    every = {"prompt_cache_key": "p-1", "user": "u-1", "safety_identifier": "s-1"}
    assert chat_key(every) == chat_key({"prompt_cache_key": "p-1"})
    assert chat_key(every) != chat_key({"user": "u-1"})


def test_user_comes_before_safety_identifier():
    both = {"user": "u-1", "safety_identifier": "s-1"}
    assert chat_key(both) == chat_key({"user": "u-1"})
    assert chat_key(both) != chat_key({"safety_identifier": "s-1"})


def test_safety_identifier_comes_before_the_opening():
    identified = chat_key({"safety_identifier": "s-1"})
    assert identified == chat_key({"safety_identifier": "s-1"}, messages=[HELLO])
    assert identified != chat_key()


def test_an_empty_identifier_falls_through_to_the_next():
    assert chat_key({"prompt_cache_key": "", "user": "u-1"}) == chat_key({"user": "u-1"})
    assert chat_key({"user": "", "prompt_cache_key": None}) == chat_key()


@pytest.mark.parametrize(
    "later",
    [
        LATER_TURNS,
        [*LATER_TURNS, {"role": "assistant", "content": "Done."}],
        # An agent's mid-conversation instruction is not part of the cached opening either.
        [*LATER_TURNS, {"role": "system", "content": "Now answer in French."}],
    ],
    ids=["next-turn", "turn-after", "later-system-message"],
)
def test_later_messages_keep_the_openings_key(later):
    assert chat_key(messages=[*OPENING, *later]) == chat_key(messages=OPENING)


@pytest.mark.parametrize(
    "other",
    [
        [SYSTEM, {"role": "user", "content": "Goodbye"}],
        [{"role": "system", "content": "You are verbose."}, HELLO],
        [HELLO],
        [SYSTEM, {"role": "user", "content": "Hello", "images": ["aGk="]}],
    ],
    ids=["first-user", "system", "no-system", "images"],
)
def test_another_opening_gives_another_key(other):
    assert chat_key(messages=other) != chat_key(messages=OPENING)


def test_the_same_opening_to_another_model_is_another_conversation():
    assert chat_key(model=OTHER) != chat_key(model=MODEL)
    assert chat_key({"user": "u-1"}, model=OTHER) != chat_key({"user": "u-1"}, model=MODEL)


def test_a_completion_is_known_by_its_prompts_opening():
    def completion_key(prompt, system=None):
        return conversation_key(MODEL, {}, {"model": MODEL, "prompt": prompt, "system": system})

    opening = "x" * 1024
    assert completion_key(opening + " one ending") == completion_key(opening + " another")
    assert completion_key("def add(a, b):") != completion_key("def sub(a, b):")
    assert completion_key("def add(a, b):", "Python") != completion_key("def add(a, b):")


@pytest.mark.parametrize(
    "payload",
    [
        {"model": MODEL, "input": ["a text to embed"]},
        {"model": MODEL, "prompt": ""},
        {"model": MODEL, "messages": [SYSTEM]},
    ],
    ids=["embeddings", "empty-prompt", "no-user-message"],
)
def test_a_call_without_a_conversation_has_no_key(payload):
    assert conversation_key(MODEL, {}, payload) is None


# Conversations: an LRU with expiry.


class FakeClock:
    """A monotonic clock the test moves; each read advances it by ``step``."""

    def __init__(self, now=0.0, step=0.0):
        self.now = now
        self.step = step

    def __call__(self):
        now = self.now
        self.now += self.step
        return now


def test_conversations_remember_the_server_that_answered():
    conversations = Conversations(capacity=10, ttl=60, clock=FakeClock())
    conversations.remember("key-1", A)
    conversations.remember("key-2", B)
    conversations.remember("key-1", C)
    assert (conversations.server("key-1"), conversations.server("key-2")) == (C, B)
    assert conversations.server("key-3") is None
    conversations.remember(None, A)
    assert (conversations.server(None), len(conversations)) == (None, 2)


def test_a_conversation_is_forgotten_ttl_seconds_after_its_last_turn():
    clock = FakeClock()
    conversations = Conversations(capacity=10, ttl=60, clock=clock)
    conversations.remember("key-1", A)
    clock.now = 50
    conversations.remember("key-1", A)
    clock.now = 109.9
    assert conversations.server("key-1") == A
    clock.now = 110
    assert conversations.server("key-1") is None
    assert len(conversations) == 0


def test_past_capacity_the_least_recently_answered_conversation_goes():
    conversations = Conversations(capacity=2, ttl=60, clock=FakeClock())
    conversations.remember("key-1", A)
    conversations.remember("key-2", B)
    conversations.remember("key-1", A)
    conversations.remember("key-3", C)
    assert len(conversations) == 2
    assert [conversations.server(key) for key in ("key-1", "key-2", "key-3")] == [A, None, C]


# Admission: the fair queue.


class SlotPool:
    """One server's slots as the queue sees them: a call is placed while one is free, and its
    placement is the caller's name; what each attempt was told and each slot given back."""

    def __init__(self, free=0):
        self.free = free
        self.aheads = []
        self.released = []
        self._lock = threading.Lock()

    def attempt(self, caller):
        def place(ahead):
            with self._lock:
                self.aheads.append((caller, ahead))
                if self.free == 0:
                    return None
                self.free -= 1
                return caller

        return place

    def release(self, placement):
        with self._lock:
            self.released.append(placement)
            self.free += 1

    def free_one(self, admission):
        """A call ended: its slot goes to the next caller in line."""
        with self._lock:
            self.free += 1
        admission.dispatch(MODEL)


class Caller:
    """A call waiting in ``admission`` on its own thread, as a gunicorn worker's greenlet does."""

    def __init__(self, admission, pool, name, first=False):
        self.name = name
        self.answer = None
        self.error = None
        self._thread = threading.Thread(
            target=self._run, args=(admission, pool, first), daemon=True
        )
        queued = admission.waiting().get(MODEL, 0)
        self._thread.start()
        # Queued before the next caller arrives: their order is the test's.
        assert eventually(lambda: admission.waiting().get(MODEL, 0)) == queued + 1

    def _run(self, admission, pool, first):
        try:
            self.answer = admission.admit(MODEL, pool.attempt(self.name), pool.release, first)
        except BaseException as error:
            self.error = error

    def result(self):
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), f"{self.name} is still waiting"
        return self.answer, self.error

    @property
    def waiting(self):
        return self._thread.is_alive()


@pytest.fixture
def patient(monkeypatch):
    """Waiting calls look at the table only when a slot frees: the test says when."""
    monkeypatch.setattr("ollama_openai.admission.LOOK_AGAIN", 60.0)


@pytest.fixture
def queue(patient):
    """An Admission with patient callers, and its slots; every caller is let go at the end."""
    admission = Admission(max_queue=10, timeout=10)
    pool = SlotPool()
    yield admission, pool
    pool.free += 100
    admission.dispatch(MODEL)


def test_a_free_slot_is_taken_at_once_without_waiting():
    admission = Admission(max_queue=10, timeout=30)
    pool = SlotPool(free=1)
    assert admission.admit(MODEL, pool.attempt("first"), pool.release) == ("first", 0.0)
    assert (pool.free, admission.waiting()) == (0, {})


def test_waiting_calls_get_freed_slots_in_arrival_order(queue):
    admission, pool = queue
    callers = [Caller(admission, pool, name) for name in ("one", "two", "three")]
    assert admission.waiting() == {MODEL: 3}
    for turn, caller in enumerate(callers):
        pool.free_one(admission)
        (placement, waited), error = caller.result()
        assert (placement, error) == (caller.name, None)
        assert waited > 0
        assert [other.waiting for other in callers] == [False] * (turn + 1) + [True] * (2 - turn)
    assert admission.waiting() == {}
    assert pool.released == []


def test_each_attempt_is_told_how_many_wait_before_it(queue):
    admission, pool = queue
    Caller(admission, pool, "one")
    Caller(admission, pool, "two")
    pool.aheads.clear()
    admission.dispatch(MODEL)
    assert pool.aheads == [("one", 0), ("two", 1)]


def test_a_first_call_goes_to_the_head_of_the_queue(queue):
    admission, pool = queue
    one = Caller(admission, pool, "one")
    two = Caller(admission, pool, "two")
    retry = Caller(admission, pool, "retry", first=True)
    pool.free_one(admission)
    assert retry.result()[0][0] == "retry"
    assert (one.waiting, two.waiting) == (True, True)
    pool.free_one(admission)
    assert one.result()[0][0] == "one"
    assert two.waiting


def test_a_full_queue_answers_429_at_once_with_retry_after(queue):
    admission, pool = queue
    admission.max_queue = 2
    Caller(admission, pool, "one")
    Caller(admission, pool, "two")
    with pytest.raises(ApiError) as caught:
        admission.admit(MODEL, pool.attempt("three"), pool.release)
    error = caught.value
    assert (error.status, error.type, error.code) == (429, "requests", "rate_limit_exceeded")
    # Nothing ended yet: a call is taken to hold its slot a second, and three must drain.
    assert error.headers == {"Retry-After": "3"}
    assert "MAX_QUEUE" in error.message
    assert admission.waiting() == {MODEL: 2}


def test_max_queue_0_refuses_every_call_that_cannot_go_at_once():
    admission = Admission(max_queue=0, timeout=30)
    pool = SlotPool()
    with pytest.raises(ApiError) as caught:
        admission.admit(MODEL, pool.attempt("one"), pool.release)
    assert (caught.value.status, caught.value.code) == (429, "rate_limit_exceeded")


def test_a_call_that_waits_past_the_timeout_is_503_ollama_busy():
    # Each read of the clock is two seconds on: the first look is past the timeout.
    admission = Admission(max_queue=10, timeout=1.5, clock=FakeClock(step=2.0))
    pool = SlotPool()
    with pytest.raises(ApiError) as caught:
        admission.admit(MODEL, pool.attempt("one"), pool.release)
    error = caught.value
    assert (error.status, error.type, error.code) == (503, "server_error", "ollama_busy")
    assert error.headers == {"Retry-After": "1", "x-should-retry": "true"}
    assert "QUEUE_TIMEOUT" in error.message
    assert admission.waiting() == {}
    # A slot freed after it left goes to nobody.
    pool.free = 1
    admission.dispatch(MODEL)
    assert pool.free == 1


class ClientGone(Exception):
    """The client went away while its call waited (a greenlet killed, in the gateway)."""


class LeavingClock:
    """A monotonic clock that raises ClientGone once ``leave`` is set: the waiting call leaves
    at its next look at the clock."""

    def __init__(self):
        self.leave = threading.Event()

    def __call__(self):
        if self.leave.is_set():
            raise ClientGone
        return time.monotonic()


def test_a_call_that_leaves_after_its_slot_was_given_gives_it_back(patient):
    clock = LeavingClock()
    admission = Admission(max_queue=10, timeout=30, clock=clock)
    pool = SlotPool()
    caller = Caller(admission, pool, "gone")
    clock.leave.set()
    pool.free_one(admission)
    answer, error = caller.result()
    assert (answer, type(error)) == (None, ClientGone)
    assert (pool.released, pool.free) == (["gone"], 1)


def test_a_call_that_leaves_while_waiting_leaves_the_queue(monkeypatch):
    # It notices at its next look at the table, at once here.
    monkeypatch.setattr("ollama_openai.admission.LOOK_AGAIN", 0.01)
    clock = LeavingClock()
    admission = Admission(max_queue=10, timeout=30, clock=clock)
    pool = SlotPool()
    caller = Caller(admission, pool, "gone")
    clock.leave.set()
    answer, error = caller.result()
    assert (answer, type(error)) == (None, ClientGone)
    assert (admission.waiting(), pool.released, pool.free) == ({}, [], 0)


# Admission: what a model's calls cost.


def ended_every(admission, clock, seconds, count):
    """``count`` calls of MODEL end ``seconds`` apart, each having held its slot ``seconds``."""
    for _ in range(count):
        admission.ended(MODEL, seconds)
        clock.now += seconds


@pytest.mark.parametrize(
    ("gap", "waiting", "retry_after"),
    [
        (2.0, 4, 10),  # one call ends every 2 s: five to drain take 10 s
        (0.01, 0, 1),  # never under a second
        (2.0, 500, 60),  # never over the SDKs' 60 s
    ],
)
def test_retry_after_follows_the_drain_rate_within_1_to_60(gap, waiting, retry_after):
    clock = FakeClock()
    admission = Admission(max_queue=10, timeout=30, clock=clock)
    ended_every(admission, clock, gap, 5)
    # The rate is read over the span from the first end to now.
    clock.now -= gap
    assert admission.retry_after(MODEL, waiting) == retry_after


def test_retry_after_uses_the_slot_time_before_two_calls_ended():
    admission = Admission(max_queue=10, timeout=30, clock=FakeClock())
    assert admission.retry_after(MODEL, 2) == 3
    admission.ended(MODEL, 7.0)
    assert admission.retry_after(MODEL, 2) == 21


def test_loading_is_not_worth_it_before_a_call_of_the_model_ended():
    admission = Admission(max_queue=10, timeout=30, clock=FakeClock())
    admission.loaded(MODEL, 1.0)
    assert admission.worth_loading(MODEL, ahead=100, warm_slots=1) is False


@pytest.mark.parametrize(
    ("ahead", "warm_slots", "worth"),
    [
        (1, 1, False),  # 2 calls of 4 s: 8 s, under the 10 s a load is taken to cost
        (2, 1, True),  # 12 s
        (2, 2, False),  # 6 s, on two slots
        (4, 2, False),  # 10 s: as long as the load, not longer
        (5, 2, True),  # 12 s
    ],
)
def test_loading_is_worth_it_when_the_wait_would_outlast_a_load(ahead, warm_slots, worth):
    admission = Admission(max_queue=10, timeout=30, clock=FakeClock())
    admission.ended(MODEL, 4.0)
    assert DEFAULT_LOAD_SECONDS == 10.0
    assert admission.worth_loading(MODEL, ahead, warm_slots) is worth


def test_a_seen_load_time_replaces_the_default():
    admission = Admission(max_queue=10, timeout=30, clock=FakeClock())
    admission.ended(MODEL, 4.0)
    admission.loaded(MODEL, 30.0)
    assert admission.worth_loading(MODEL, ahead=2, warm_slots=1) is False
    assert admission.worth_loading(MODEL, ahead=7, warm_slots=1) is True


# Settings.


def one_line_error(env):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_routing_settings_default_to_warm_routing_with_ollamas_one_slot():
    settings = Settings.from_env({})
    assert (settings.routing, settings.server_slots) == ("warm", 1)
    assert (settings.queue_timeout, settings.max_queue) == (120.0, 512)
    assert (settings.server_header, settings.worker, settings.slots_by_server) == (True, (0, 1), {})


def test_routing_settings_are_read_from_the_environment():
    settings = Settings.from_env(
        {
            "ROUTING": " Least-In-Flight ",
            "SERVER_SLOTS": "4",
            "QUEUE_TIMEOUT": "2.5",
            "MAX_QUEUE": "0",
            "SERVER_HEADER": "false",
        }
    )
    assert (settings.routing, settings.server_slots) == ("least-in-flight", 4)
    assert (settings.queue_timeout, settings.max_queue, settings.server_header) == (2.5, 0, False)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ROUTING", "fastest", "ROUTING must be one of warm, least-in-flight, got 'fastest'"),
        ("SERVER_SLOTS", "0", "SERVER_SLOTS must be a positive whole number, got '0'"),
        ("SERVER_SLOTS", "two", "SERVER_SLOTS must be a positive whole number, got 'two'"),
        ("MAX_QUEUE", "-1", "MAX_QUEUE must be a whole number (0 or more), got '-1'"),
        ("QUEUE_TIMEOUT", "0", "QUEUE_TIMEOUT must be a number of seconds above 0, got '0'"),
        ("QUEUE_TIMEOUT", "soon", "QUEUE_TIMEOUT must be a number of seconds above 0, got 'soon'"),
        ("SERVER_HEADER", "hidden", "SERVER_HEADER must be true or false, got 'hidden'"),
    ],
)
def test_a_bad_routing_setting_is_one_line_naming_it(name, value, message):
    assert one_line_error({name: value}) == message


def test_slots_after_a_base_url_entry_are_that_servers_and_leave_its_url():
    settings = Settings.from_env(
        {"OLLAMA_BASE_URL": "http://gpu-a:11434/#slots=4, http://gpu-b:11434, https://c/x#slots=2"}
    )
    assert settings.ollama_base_urls == ("http://gpu-a:11434", "http://gpu-b:11434", "https://c/x")
    assert settings.slots_by_server == {"http://gpu-a:11434": 4, "https://c/x": 2}


def test_a_space_before_the_slots_is_not_part_of_the_url():
    settings = Settings.from_env({"OLLAMA_BASE_URL": "http://gpu-a:11434/ #slots=4"})
    assert settings.ollama_base_urls == ("http://gpu-a:11434",)
    assert settings.slots_by_server == {"http://gpu-a:11434": 4}


@pytest.mark.parametrize("fragment", ["#slots=0", "#foo", "#slots=", "#slots=two", "#"])
def test_anything_but_slots_after_a_base_url_entry_is_refused(fragment):
    message = one_line_error({"OLLAMA_BASE_URL": f"http://gpu-a:11434{fragment}"})
    assert message.startswith("OLLAMA_BASE_URL may end an entry only with #slots=N")


def test_one_server_listed_twice_with_other_slots_is_refused():
    message = one_line_error({"OLLAMA_BASE_URL": "http://a:11434#slots=2,http://a:11434#slots=3"})
    assert message == "OLLAMA_BASE_URL lists http://a:11434 twice"


@pytest.mark.parametrize(
    ("value", "worker"),
    [
        ("2/4", (2, 4)),
        ("0/1", (0, 1)),
        ("", (0, 1)),
        ("4/4", (0, 1)),
        ("x/2", (0, 1)),
        ("1/0", (0, 1)),
        ("3", (0, 1)),
    ],
)
def test_the_workers_index_and_count_come_from_gunicorn(value, worker):
    assert Settings.from_env({"OLLAMA_OPENAI_WORKER": value}).worker == worker
