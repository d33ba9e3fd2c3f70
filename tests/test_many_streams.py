"""Many streams at once through one gevent worker, every text intact.

A lighter cousin of `make bench`'s slow-stream run, kept in the suite because the bugs it
guards only show with many connections: select() refusing descriptors above 1024, and a
client watcher left on a closed socket firing for the next connection that reuses its number.
"""

import json
import subprocess
import sys

import pytest
import requests

from ollama_standin import ROOT, free_port, wait_for_port

STREAMS = 600  # each holds two descriptors in the gateway: above select()'s 1024 in all
REPLY = " ".join(f"t{i}" for i in range(8))

CLIENT = """
from gevent import monkey; monkey.patch_all()
import json, sys, gevent
from bench.loadgen import Connection, read_stream, sse_text
port, count, reply = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
payload = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": True}
results = []
def client():
    try:
        conn = Connection(port)
        result = read_stream(conn, "/v1/chat/completions", payload, b"\\n\\n", sse_text)
        conn.close()
        results.append(result.done and result.text == reply and not result.error)
    except Exception as error:
        results.append(repr(error))
gevent.joinall([gevent.spawn(client) for _ in range(count)])
failures = [r for r in results if r is not True][:5]
print(json.dumps({"intact": results.count(True), "failures": failures}))
"""


@pytest.fixture(scope="module")
def gevent_standin():
    """The stand-in under gevent in its own process: hundreds of streams, no thread each."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ollama_standin", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def test_hundreds_of_concurrent_streams_in_one_worker_stay_intact(gevent_standin, gateway_factory):
    requests.post(
        f"http://127.0.0.1:{gevent_standin}/_standin/config",
        json={"reply": REPLY, "token_interval": 0.3},
        timeout=10,
    ).raise_for_status()
    gateway = gateway_factory(f"http://127.0.0.1:{gevent_standin}", WEB_CONCURRENCY="1")
    result = subprocess.run(
        [sys.executable, "-c", CLIENT, str(gateway.port), str(STREAMS), REPLY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {"intact": STREAMS, "failures": []}
    assert "Traceback" not in gateway.log()
