"""The pumps' mailbox: bounded, so a slow client stops the reading of Ollama."""

import json
import queue
import threading

import pytest

from ollama_openai.exchange import Exchange
from ollama_openai.pumps import CLIENT_GONE, Mailbox, UpstreamPumps
from ollama_openai.streaming import relay


def writer(box, items):
    """Put ``items`` from another thread; the thread and what each put returned."""
    results = []
    thread = threading.Thread(target=lambda: results.extend(box.put(item) for item in items))
    thread.start()
    return thread, results


def test_a_full_mailbox_makes_the_writer_wait_until_the_reader_takes_one():
    box = Mailbox(capacity=2)
    thread, results = writer(box, [(0, "a"), (0, "b"), (0, "c")])
    thread.join(0.3)
    assert thread.is_alive(), "the third line was taken although nobody read"
    assert box.get(1) == (0, "a")
    thread.join(5)
    assert results == [True, True, True]
    assert [box.get(1), box.get(1)] == [(0, "b"), (0, "c")]
    with pytest.raises(queue.Empty):
        box.get(0.01)


def test_closing_wakes_a_waiting_writer_and_drops_what_it_puts():
    box = Mailbox(capacity=1)
    thread, results = writer(box, [(0, "a"), (0, "b")])
    thread.join(0.3)
    box.close()
    thread.join(5)
    assert not thread.is_alive()
    assert results == [True, False]
    assert box.put((0, "c")) is False


def test_a_hang_up_jumps_the_queue_of_a_full_mailbox():
    box = Mailbox(capacity=2)
    box.put((0, "a"))
    box.put((0, "b"))
    box.close()
    box.put_first((0, CLIENT_GONE))
    assert box.get(1) == (0, CLIENT_GONE)


class _Upstream:
    """An UpstreamStream that hands over ``lines`` at once."""

    def __init__(self, lines):
        self._lines = lines

    def lines(self):
        yield from self._lines

    def close(self):
        pass

    def abort(self):
        pass


class _BrokenTranslator:
    """A stream translator with a bug in ``piece``."""

    def start(self):
        return [(None, {"start": True})]

    def piece(self, line, index):
        raise KeyError("a bug")

    def fail(self, error):
        return [(None, {"error": error})]


def test_a_bug_while_relaying_ends_the_stream_with_an_error_event(gateway_log):
    pumps = UpstreamPumps([lambda: _Upstream([{"message": {"content": "hi"}, "done": True}])])
    events = list(relay(pumps, _BrokenTranslator(), 1.0, Exchange("chat.completions")))
    assert json.loads(events[-1].removeprefix(b"data: "))["error"]["code"] == "internal_error"
    assert "unexpected error while relaying a stream" in gateway_log.text
