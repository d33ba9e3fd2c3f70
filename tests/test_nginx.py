"""deploy/nginx.conf in front of gunicorn: streams pass through event by event."""

import http.client
import itertools
import json
import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager

import openai
import pytest
import requests

from ollama_standin import ROOT, free_port, wait_for_port
from tests.conftest import eventually

HELLO = [{"role": "user", "content": "Tell me a story"}]


def nginx_binary():
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    assert os.path.exists(found), "nginx is not installed: `make test` installs it (system-deps)"
    return found


@pytest.fixture(scope="module")
def nginx(server, tmp_path_factory):
    """Nginx running the shipped site file, its upstream pointed at the test gateway."""
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "server 127.0.0.1:8000;" in site
    site = site.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{server.port};")
    with running_nginx(site, tmp_path_factory.mktemp("nginx")) as url:
        yield url


@contextmanager
def running_nginx(site, workdir):
    """Nginx serving ``site`` (a shipped site file, with the snippet it includes) on a free
    loopback port; yields its URL."""
    port = free_port()
    assert "listen 80;" in site
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
    (workdir / "site.conf").write_text(site)
    # Where an operator puts the shared snippet; the site includes it relative to the directory
    # of Nginx's main file, here the work directory.
    (workdir / "snippets").mkdir()
    shutil.copy(ROOT / "deploy" / "ollama-openai-proxy.conf", workdir / "snippets")
    user = "user root;" if os.geteuid() == 0 else ""
    (workdir / "nginx.conf").write_text(
        f"""
        daemon off;
        {user}
        worker_processes 1;
        pid {workdir}/nginx.pid;
        error_log {workdir}/error.log info;
        events {{ worker_connections 256; }}
        http {{
            access_log {workdir}/access.log;
            client_body_temp_path {workdir}/body;
            proxy_temp_path {workdir}/proxy;
            fastcgi_temp_path {workdir}/fastcgi;
            uwsgi_temp_path {workdir}/uwsgi;
            scgi_temp_path {workdir}/scgi;
            include {workdir}/site.conf;
        }}
        """
    )
    process = subprocess.Popen(
        [nginx_binary(), "-p", str(workdir), "-c", str(workdir / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=10)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def test_stream_events_arrive_one_by_one_through_nginx(nginx, ollama):
    ollama.reply = "one two three four five"
    ollama.token_interval = 0.3
    response = requests.post(
        f"{nginx}/v1/chat/completions",
        json={"model": "llama3.2", "messages": HELLO, "stream": True},
        stream=True,
        timeout=30,
    )
    assert response.status_code == 200
    started = time.monotonic()
    arrivals = [
        time.monotonic() - started
        for line in response.iter_lines()
        if line.startswith(b"data: {") and b'"content":"' in line and b'"role"' not in line
    ]
    assert len(arrivals) == 5
    # Produced 0.3 s apart, they must arrive spread out, not in one burst at the end.
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert min(gaps) > 0.15, gaps
    assert arrivals[-1] - arrivals[0] > 0.9


def test_sdk_through_nginx(nginx, ollama):
    with openai.OpenAI(base_url=f"{nginx}/v1", api_key="k", max_retries=0) as client:
        stream = client.chat.completions.create(model="llama3.2", messages=HELLO, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream) == ollama.replies[-1]
        answer = client.chat.completions.create(model="llama3.2", messages=HELLO)
        assert answer.choices[0].message.content == ollama.replies[-1]
        with pytest.raises(openai.NotFoundError) as caught:
            client.models.retrieve("hf.co/nobody/nothing:Q8_0")
        assert caught.value.body["code"] == "model_not_found"


TWO_GATEWAYS_KEY = "sk-two-gateways-0123456789"


@pytest.fixture(scope="module")
def nginx_two_gateways(gateway_factory, ollama_url, redis_url, tmp_path_factory):
    """deploy/nginx-two-gateways.conf in front of two gateways sharing a Redis rate limit."""
    env = {
        "API_KEYS": TWO_GATEWAYS_KEY,
        "RATE_LIMIT": "6/minute",
        "RATE_LIMIT_STORAGE_URI": redis_url,
        "TRUSTED_PROXIES": "1",
    }
    gateways = [gateway_factory(ollama_url, **env) for _ in range(2)]
    site = (ROOT / "deploy" / "nginx-two-gateways.conf").read_text()
    for shipped, gateway in zip(("8001", "8002"), gateways, strict=True):
        assert f"server 127.0.0.1:{shipped} " in site
        site = site.replace(f"127.0.0.1:{shipped} ", f"127.0.0.1:{gateway.port} ")
    with running_nginx(site, tmp_path_factory.mktemp("nginx-two")) as url:
        yield url, gateways


def test_two_gateways_behind_nginx_share_the_work_and_one_budget(nginx_two_gateways, ollama):
    url, gateways = nginx_two_gateways
    with openai.OpenAI(base_url=f"{url}/v1", api_key=TWO_GATEWAYS_KEY, max_retries=0) as client:
        for _ in range(3):
            stream = client.chat.completions.create(model="llama3.2", messages=HELLO, stream=True)
            assert "".join(c.choices[0].delta.content or "" for c in stream)
            client.models.list()
        with pytest.raises(openai.RateLimitError):
            client.models.list()
    # Access lines are written once an answer is closed, maybe just after the client has it.
    served = eventually(
        lambda: [gateway.log().count("path=/v1/") for gateway in gateways],
        lambda counts: sum(counts) >= 7,
    )
    assert all(served) and sum(served) == 7, served


def raw_answer(url, data):
    """Send ``data`` byte for byte to the server at ``url``; its status, headers and body."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.getheader("Content-Type"), response.read()


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"GARBAGE\r\n\r\n", 400, "bad_request"),
        (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b"\r\nContent-Length: %d\r\n\r\n" % (5 * 1024 * 1024),
            413,
            "request_too_large",
        ),
        (b"GET /v1/models?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
        (
            b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
            431,
            "request_header_fields_too_large",
        ),
        # The error pages themselves are not for clients.
        (b"GET /_ollama_openai_error/502 HTTP/1.1\r\nHost: x\r\n\r\n", 404, "unknown_url"),
    ],
    ids=["unreadable", "body-too-large", "url-too-long", "header-too-large", "error-page"],
)
def test_nginx_answers_its_own_errors_as_envelopes(nginx, data, status, code):
    answered, content_type, body = raw_answer(nginx, data)
    assert (answered, content_type) == (status, "application/json")
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("invalid_request_error", code)


def test_nginx_in_front_of_a_gateway_that_is_down_answers_an_envelope(tmp_path):
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    site = site.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{free_port()};")
    with running_nginx(site, tmp_path) as url:
        response = requests.get(f"{url}/v1/models", timeout=30)
    assert (response.status_code, response.headers["Content-Type"]) == (502, "application/json")
    assert response.json()["error"]["code"] == "bad_gateway"


def test_the_gateways_own_errors_pass_through_nginx(nginx, ollama):
    response = requests.get(f"{nginx}/v1/models/nobody/nothing", timeout=30)
    assert (response.status_code, response.json()["error"]["code"]) == (404, "model_not_found")
    ollama.fail_status = 500
    response = requests.post(
        f"{nginx}/v1/chat/completions", json={"model": "llama3.2", "messages": HELLO}, timeout=30
    )
    assert (response.status_code, response.json()["error"]["code"]) == (502, "upstream_error")
