"""The pumps' mailbox: bounded, so a slow client stops the reading of Ollama."""

import queue
import threading

import pytest

from ollama_openai.pumps import CLIENT_GONE, Mailbox


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


# --- Connections to Ollama. ---
