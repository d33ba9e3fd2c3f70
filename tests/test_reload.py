"""Keys changed while the gateway runs: a keys file edited in place (each worker reads it again
within a second) and SIGHUP (gunicorn reloads; a reload whose settings fail is refused and the
workers keep theirs), with streams left running through both."""

import hashlib
import json
import os
import re
import signal

import openai
import pytest
import requests

from tests.conftest import eventually

HELLO = [{"role": "user", "content": "Tell me a story"}]
# 30 tokens at 0.05 s: a stream of a second and a half.
STORY = " ".join(f"word{number}" for number in range(30))


def team(*names):
    return "".join(
        f'[keys.{name}]\nsha256 = "{hashlib.sha256(f"sk-{name}".encode()).hexdigest()}"\n'
        for name in names
    )


def replace_file(path, text):
    """Write as an operator should: a new file moved over the old one."""
    (path.parent / "new").write_text(text)
    os.replace(path.parent / "new", path)


# The tests poll with keys that are wrong until a file changes: no bound on wrong keys here.
# Seconds allowed for what waits on workers booting (a reload, a respawn): on a loaded
# machine that is seconds.
BOOT = 30
UNBOUNDED = {"AUTH_FAILURE_LIMIT": ""}


def start(gateway_factory, ollama_url, **env):
    return gateway_factory(ollama_url, **UNBOUNDED, **env)


def statuses(gateway, key, count=8):
    # A new connection per request lets the kernel hand them to every worker.
    return {
        requests.get(
            f"{gateway.url}/v1/models", headers={"x-api-key": key}, timeout=BOOT
        ).status_code
        for _ in range(count)
    }


def every_worker_answers(gateway, key, status):
    found = eventually(lambda: statuses(gateway, key), lambda found: found == {status}, BOOT)
    return found == {status}


def both_workers_served(gateway, workers_dir, key):
    """Whether both workers answered a request with ``key``: each worker's status file (written
    once its app is up, then each second) counts the requests it served."""

    def served():
        statuses(gateway, key, 2)
        files = list(workers_dir.glob("status-*.json"))
        return len(files) == 2 and all(json.loads(f.read_text())["samples"] for f in files)

    return eventually(served, timeout=BOOT)


def open_stream(gateway, key):
    """A slow stream, its first chunk read; the rest is read by ``finish``."""
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    stream = client.chat.completions.create(model="llama3.2", messages=HELLO, stream=True)
    chunks = iter(stream)
    first = next(chunks)
    return client, first, chunks


def finish(client, first, chunks):
    """The stream's whole text and last finish reason, once it has ended."""
    rest = list(chunks)
    client.close()
    text = "".join(chunk.choices[0].delta.content or "" for chunk in [first, *rest])
    return text, rest[-1].choices[0].finish_reason


@pytest.fixture
def slow_story(ollama):
    ollama.reply = STORY
    ollama.token_interval = 0.05


def test_an_edited_team_file_adds_and_removes_keys_while_a_stream_runs(
    gateway_factory, ollama_url, tmp_path, slow_story
):
    path = tmp_path / "team.toml"
    path.write_text(team("alice", "bob"))
    workers_dir = tmp_path / "workers"
    workers_dir.mkdir()
    gateway = start(
        gateway_factory,
        ollama_url,
        TEAM_KEYS_FILE=str(path),
        WEB_CONCURRENCY="2",
        PROMETHEUS_MULTIPROC_DIR=str(workers_dir),
    )
    # Both workers have read the file before it changes: on a loaded machine the second may
    # boot late, read the new file, and serve every request, so the first never reads again.
    assert both_workers_served(gateway, workers_dir, "sk-alice")
    stream = open_stream(gateway, "sk-alice")
    replace_file(path, team("bob", "carol"))
    assert every_worker_answers(gateway, "sk-carol", 200)
    assert every_worker_answers(gateway, "sk-alice", 401)
    assert every_worker_answers(gateway, "sk-bob", 200)
    # Alice's stream began while her key was good: it runs to its end.
    assert finish(*stream) == (STORY, "stop")
    assert "keys read again: 2 keys" in eventually(
        gateway.log, lambda text: "keys read again: 2 keys" in text
    )


def test_a_broken_edit_keeps_the_keys_in_force(gateway_factory, ollama_url, tmp_path):
    path = tmp_path / "keys"
    path.write_text("sk-alice # Alice\n")
    gateway = start(gateway_factory, ollama_url, API_KEYS_FILE=str(path))
    # The worker has read the file (gunicorn listens before its workers have booted).
    assert statuses(gateway, "sk-alice") == {200}
    replace_file(path, "# everybody left\n")
    # The file is looked at when a key comes in.
    log = eventually(
        lambda: (statuses(gateway, "sk-alice", 1), gateway.log())[1],
        lambda text: "cannot be used" in text,
    )
    assert "the keys in force stay: API_KEYS_FILE holds no keys" in log
    assert statuses(gateway, "sk-alice") == {200}


@pytest.mark.parametrize(
    ("variable", "good", "bad", "why"),
    [
        ("API_KEYS_FILE", "sk-alice\n", "", "API_KEYS_FILE holds no keys"),
        ("API_KEYS_FILE", "sk-alice\n", None, "API_KEYS_FILE cannot be read"),
        ("TEAM_KEYS_FILE", team("alice"), "[keys.alice\n", "TEAM_KEYS_FILE is not valid TOML"),
        # Any setting read from a file: the models file too.
        ("MODELS_FILE", "", "[models\n", "MODELS_FILE .*: is not valid TOML"),
    ],
    ids=["empty-list", "list-removed", "broken-keys-toml", "broken-models-toml"],
)
def test_sighup_with_a_bad_keys_file_is_refused_and_streams_go_on(
    gateway_factory, ollama_url, tmp_path, slow_story, variable, good, bad, why
):
    path = tmp_path / "keys"
    path.write_text(good)
    env = {variable: str(path), "GRACEFUL_TIMEOUT": "30"}
    if variable == "MODELS_FILE":
        env["API_KEYS"] = "sk-alice"
    gateway = start(gateway_factory, ollama_url, **env)
    stream = open_stream(gateway, "sk-alice")
    # Read once a worker answers: gunicorn listens before it forks them.
    workers = gateway.workers()
    if bad is None:
        path.unlink()
    else:
        replace_file(path, bad)
    gateway.process.send_signal(signal.SIGHUP)
    log = eventually(gateway.log, lambda text: "reload refused" in text)
    refused = "ollama-openai: reload refused, the workers keep the settings in force: "
    assert re.search(re.escape(refused) + why, log)
    # The master lives on, its workers are the same, the stream ends whole, the key still works.
    assert gateway.process.poll() is None
    assert finish(*stream) == (STORY, "stop")
    assert gateway.workers() == workers
    assert statuses(gateway, "sk-alice") == {200}


def test_sighup_with_good_files_starts_new_workers_and_lets_streams_finish(
    gateway_factory, ollama_url, tmp_path, slow_story
):
    path = tmp_path / "team.toml"
    path.write_text(team("alice"))
    gateway = start(gateway_factory, ollama_url, TEAM_KEYS_FILE=str(path), GRACEFUL_TIMEOUT="30")
    stream = open_stream(gateway, "sk-alice")
    # Read once a worker answers: gunicorn listens before it forks them.
    workers = gateway.workers()
    replace_file(path, team("bob"))
    gateway.process.send_signal(signal.SIGHUP)
    assert finish(*stream) == (STORY, "stop")
    # The old workers leave once their clients have gone.
    assert eventually(gateway.workers, lambda pids: pids and not set(pids) & set(workers), BOOT)
    assert every_worker_answers(gateway, "sk-bob", 200)
    assert every_worker_answers(gateway, "sk-alice", 401)
    assert gateway.process.poll() is None


def test_a_worker_that_boots_while_a_file_is_broken_starts_with_the_checked_keys(
    gateway_factory, ollama_url, tmp_path
):
    path = tmp_path / "team.toml"
    path.write_text(team("alice"))
    gateway = start(gateway_factory, ollama_url, TEAM_KEYS_FILE=str(path))
    assert statuses(gateway, "sk-alice") == {200}
    replace_file(path, "[keys.alice\n")
    # The worker dies (a crash, the OOM killer); the master forks a new one, which cannot
    # read the file.
    (worker,) = gateway.workers()
    os.kill(worker, signal.SIGKILL)
    assert eventually(gateway.workers, lambda pids: pids and pids != [worker], BOOT)
    assert statuses(gateway, "sk-alice") == {200}
    assert "starting with the keys last checked: TEAM_KEYS_FILE is not valid TOML" in gateway.log()
    # Fixed, the file is read again.
    replace_file(path, team("bob"))
    assert every_worker_answers(gateway, "sk-bob", 200)
    assert gateway.process.poll() is None
