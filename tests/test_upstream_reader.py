"""One choice read in the relay's own greenlet: keep-alives while Ollama is silent, lines
handed over in order and in bounded batches (its connection kept once the answer is whole:
test_transport)."""

import queue
import time
from functools import partial

import requests

from ollama_openai.ollama import OllamaClient
from ollama_openai.pumps import MAILBOX_CAPACITY
from ollama_openai.upstream_reader import UpstreamReader

CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "Hi"}]}


def reader_of(client):
    reader = UpstreamReader(partial(client.stream, "/api/chat", CHAT))
    reader.wait_opened(5)
    return reader


def read_all(reader, timeout):
    """Every line up to the done line, and how many waits found Ollama silent."""
    lines, silences = [], 0
    while not (lines and lines[-1].get("done")):
        try:
            ready = reader.get(timeout)
        except queue.Empty:
            silences += 1
            continue
        while ready is not None:
            lines.append(ready[1])
            ready = reader.get_ready()
    return lines, silences


def test_a_silent_ollama_gives_the_relay_time_for_keepalives(ollama, ollama_url):
    ollama.configure(reply="one two", token_interval=0.3)
    reader = reader_of(OllamaClient(ollama_url, timeout=5, connect_timeout=1))
    lines, silences = read_all(reader, 0.05)
    reader.close()
    assert "".join(line["message"]["content"] for line in lines) == "one two"
    assert silences >= 2


def test_lines_already_there_come_in_batches_of_at_most_the_mailbox_size(ollama, ollama_url):
    words = [f"w{n}" for n in range(3 * MAILBOX_CAPACITY)]
    ollama.configure(reply=" ".join(words))
    reader = reader_of(OllamaClient(ollama_url, timeout=5, connect_timeout=1))
    batches = []
    while not (batches and batches[-1][-1].get("done")):
        batch = [reader.get(5)[1]]
        while (ready := reader.get_ready()) is not None:
            batch.append(ready[1])
        batches.append(batch)
    reader.close()
    text = "".join(line["message"]["content"] for batch in batches for line in batch)
    assert text == " ".join(words)
    assert max(len(batch) for batch in batches) <= MAILBOX_CAPACITY


def test_lines_are_handed_over_as_they_come_when_the_buffer_cannot_be_seen(ollama, ollama_url):
    # urllib3's pool, as for an https:// server: what it has buffered cannot be seen, so a
    # look without waiting must find nothing rather than wait for Ollama's next line.
    ollama.configure(reply="one two three four", token_interval=0.3)
    client = OllamaClient(ollama_url, timeout=5, connect_timeout=1)
    client._adapter = requests.adapters.HTTPAdapter()
    reader = reader_of(client)
    lines, looks = [], []
    while not (lines and lines[-1].get("done")):
        ready = reader.get(5)
        while ready is not None:
            lines.append(ready[1])
            started = time.monotonic()
            ready = reader.get_ready()
            looks.append(time.monotonic() - started)
    reader.close()
    assert "".join(line["message"]["content"] for line in lines) == "one two three four"
    # Each look returned at once (the next line was 0.3 s away), not with the next line.
    assert max(looks) < 0.15
