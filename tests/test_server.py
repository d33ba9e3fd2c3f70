"""The gateway as operators run it: gunicorn, gevent workers, gunicorn.conf.py."""

import requests


def test_gevent_workers_boot_cleanly(server):
    requests.get(f"{server.url}/health", timeout=10)
    log = server.log()
    assert "Using worker: gevent" in log
    # Importing requests/ssl before gevent patches them makes sockets block a whole worker.
    assert "MonkeyPatchWarning" not in log
    assert "Traceback" not in log


def test_no_traceback_reaches_the_log_for_client_errors(server, ollama):
    requests.post(f"{server.url}/v1/chat/completions", data="{", timeout=10)
    requests.get(f"{server.url}/v1/models/%2e%2e%2fapi%2fdelete", timeout=10)
    assert "Traceback" not in server.log()
