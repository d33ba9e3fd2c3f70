"""Browser apps calling the gateway from the page, in headless Chromium: the official JavaScript
SDK loaded by a page served from another loopback origin streams an answer into the page; a
gateway whose CORS_ORIGINS names another origin fails the call in the browser; a 429's
``retry-after`` and the ``x-request-id`` are readable by the page's script.

``make test`` installs Debian's chromium and chromium-driver; the ``browser`` fixture
(conftest.py) drives them with Selenium.
"""

import functools
import threading
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

TESTS = Path(__file__).resolve().parent
SDK = TESTS / "js" / "node_modules" / "openai"


class PageHandler(SimpleHTTPRequestHandler):
    """The test page at /, the JavaScript SDK's ES modules under /sdk/."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript"}

    def translate_path(self, path):
        path = urllib.parse.urlsplit(path).path
        if path.startswith("/sdk/"):
            return str(SDK / path.removeprefix("/sdk/"))
        return str(TESTS / "browser" / "page.html")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def page_origin():
    """The page's own origin: another loopback port than the gateway's."""
    assert (SDK / "index.mjs").exists(), "the JavaScript SDK is not installed: run `make test`"
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(PageHandler))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def open_page(browser, page_origin, gateway, mode, key=None):
    """Load the page for one mode and wait for its script to say how it ended."""
    query = {"gateway": gateway.url, "mode": mode} | ({"key": key} if key else {})
    browser.get(f"{page_origin}/?{urllib.parse.urlencode(query)}")
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 30).until(lambda _: status.text)
    return status


@pytest.fixture(scope="module")
def allowed_gateway(gateway_factory, ollama_url, page_origin):
    return gateway_factory(ollama_url, CORS_ORIGINS=page_origin)


@pytest.mark.parametrize(
    ("mode", "text"),
    [
        ("chat", "Hello! You said: Hello from the browser"),
        ("responses", "Hello! You said: Hello responses"),
    ],
)
def test_a_page_streams_an_answer_through_the_gateway(
    browser, page_origin, allowed_gateway, ollama, mode, text
):
    status = open_page(browser, page_origin, allowed_gateway, mode)
    assert status.text == "done"
    assert browser.find_element(By.ID, "out").text == text


def test_an_origin_the_gateway_does_not_allow_fails_in_the_browser(
    browser, page_origin, gateway_factory, ollama_url, ollama
):
    gateway = gateway_factory(ollama_url, CORS_ORIGINS="https://app.example.com")
    status = open_page(browser, page_origin, gateway, "chat")
    assert status.text.startswith("error: APIConnectionError")
    assert browser.find_element(By.ID, "out").text == ""
    # The preflight was refused, so the page's request never reached Ollama.
    assert ollama.last_request("/api/chat") is None


def test_a_page_reads_retry_after_and_the_request_id(
    browser, page_origin, gateway_factory, ollama_url, ollama
):
    gateway = gateway_factory(ollama_url, CORS_ORIGINS=page_origin, RATE_LIMIT="1/minute")
    status = open_page(browser, page_origin, gateway, "limited")
    assert status.text == "done"
    assert status.get_attribute("data-request-id").startswith("req_")
    assert status.get_attribute("data-error-status") == "429"
    assert 1 <= int(status.get_attribute("data-retry-after")) <= 60
    assert status.get_attribute("data-error-request-id").startswith("req_")
