"""The gateway as operators run it: gunicorn, gevent workers, gunicorn.conf.py."""

import requests

from tests.conftest import eventually


def test_gevent_workers_boot_cleanly(server):
    response = requests.get(f"{server.url}/health", timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"
    log = server.log()
    assert "Using worker: gevent" in log
    # Importing requests/ssl before gevent patches them makes sockets block a whole worker.
    assert "MonkeyPatchWarning" not in log
    assert "Traceback" not in log


def test_no_traceback_reaches_the_log_for_client_errors(server, ollama):
    broken = requests.post(
        f"{server.url}/v1/chat/completions",
        data="{",
        headers={"Content-Type": "application/json", "X-Request-ID": "server-broken-body"},
        timeout=10,
    )
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "invalid_json"
    escaping = requests.get(
        f"{server.url}/v1/models/%2e%2e%2fapi%2fdelete",
        headers={"X-Request-ID": "server-dot-dot"},
        timeout=10,
    )
    assert escaping.status_code == 404
    assert escaping.json()["error"]["code"] == "model_not_found"
    # The id is looked up in the model list (read with the loaded models), never put in an
    # upstream URL.
    assert [request.path for request in ollama.requests] == ["/api/tags", "/api/ps"]
    # Both answers are logged once closed; a traceback would come before those lines.
    log = eventually(
        server.log,
        lambda text: (
            "request_id=server-broken-body" in text and "request_id=server-dot-dot" in text
        ),
    )
    assert "Traceback" not in log
