"""The status page in headless Chromium, against a gateway with two Ollama servers (one down):
every section renders, the figures move after traffic, with API keys on the page asks for a
key and a wrong one shows the error; /status.json is the same data for scripts. The test run
writes a screenshot of the page to test-artifacts/status-page.png."""

import hashlib
import time
from pathlib import Path

import openai
import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from ollama_openai.version import __version__
from ollama_standin import StandinServer, free_port
from tests.conftest import eventually

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
KEY = "sk-status-page-0123456789"
HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def down_url():
    """An Ollama server that is not running."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def status_standin():
    """This module's own Ollama stand-in. A gateway with several servers reads their models in
    the background every 30 s until the session ends; on the shared stand-in those reads would
    land in other tests' record of what reached Ollama."""
    with StandinServer() as server:
        yield server


@pytest.fixture
def status_ollama(status_standin):
    """This module's stand-in, reset to its defaults for each test."""
    status_standin.standin.reset()
    yield status_standin.standin
    status_standin.standin.reset()


@pytest.fixture(scope="module")
def open_gateway(gateway_factory, status_standin, down_url):
    return gateway_factory(f"{status_standin.url},{down_url}", WEB_CONCURRENCY="2")


def rows(browser, table):
    """A table's cells, read in one script call: the page redraws its tables every few
    seconds, so reading element by element could meet a row that is gone."""
    return browser.execute_script(
        "return [...document.querySelectorAll(`#${arguments[0]} tr`)].slice(1)"
        ".map((row) => [...row.cells].map((cell) => cell.textContent))",
        table,
    )


def wait_for(browser, check, timeout=20):
    WebDriverWait(browser, timeout).until(lambda _: check())


def test_every_section_renders_and_figures_move_after_traffic(
    browser, open_gateway, status_standin, status_ollama, down_url
):
    ollama_url = status_standin.url
    browser.get(f"{open_gateway.url}/status")
    wait_for(browser, lambda: browser.find_element(By.ID, "status").is_displayed())
    assert browser.find_element(By.TAG_NAME, "h1").text == f"ollama-openai {__version__}"
    # The second worker may still be starting: the page refreshes itself every few seconds.
    wait_for(browser, lambda: ["workers", "2"] in rows(browser, "gateway"))
    assert rows(browser, "gateway")[0] == ["version", __version__]
    servers = {row[0]: row[1:5] for row in rows(browser, "servers")}
    assert servers[ollama_url][0] == "up" and "llama3.2:latest" in servers[ollama_url][3]
    assert servers[down_url][0] == "down"
    with openai.OpenAI(base_url=f"{open_gateway.url}/v1", api_key="k", max_retries=0) as client:
        for _ in range(3):
            client.chat.completions.create(
                model="llama3.2", messages=[{"role": "user", "content": "hi"}]
            )
        status_ollama.fail_status = 500
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(
                model="llama3.2", messages=[{"role": "user", "content": "x"}]
            )
    wait_for(browser, lambda: any(row[0] == "llama3.2" for row in rows(browser, "models")))
    [model] = [row for row in rows(browser, "models") if row[0] == "llama3.2"]
    assert int(model[1]) >= 3
    wait_for(browser, lambda: any(row[1] == "upstream_error" for row in rows(browser, "errors")))
    routes = {(row[0], row[1]) for row in rows(browser, "routes")}
    assert {("/v1/chat/completions", "200"), ("/v1/chat/completions", "502")} <= routes
    ARTIFACTS.mkdir(exist_ok=True)
    browser.set_window_size(1280, 1500)
    browser.save_screenshot(str(ARTIFACTS / "status-page.png"))
    assert (ARTIFACTS / "status-page.png").stat().st_size > 10_000


def test_status_json_is_the_same_data_for_scripts(
    open_gateway, status_standin, status_ollama, down_url
):
    ollama_url = status_standin.url
    with openai.OpenAI(base_url=f"{open_gateway.url}/v1", api_key="k", max_retries=0) as client:
        client.chat.completions.create(model="qwen3:8b", messages=HELLO)

    def up_server():
        body = requests.get(f"{open_gateway.url}/status.json", timeout=30).json()
        return body, next(s for s in body["servers"] if s["url"] == ollama_url)

    # Servers are probed at most every 10 s: the model loaded just now shows within that.
    def qwen_loaded(found):
        return any(m["name"] == "qwen3:8b" for m in found[1]["loaded"] or [])

    body, up = eventually(up_server, qwen_loaded, timeout=25)
    [loaded] = [m for m in up["loaded"] if m["name"] == "qwen3:8b"]
    assert loaded["context_length"] > 0 and loaded["expires_at"] > body["generated_at"]
    assert set(body) == {"generated_at", "gateway", "servers", "queue", "traffic", "keys"}
    # Keys are off: the ledger counts this gateway's use under "".
    [no_key] = body["keys"]
    assert no_key["key"] == "" and no_key["requests"] >= 4
    assert body["gateway"]["settings"]["api_keys"] == "off"
    [down] = [server for server in body["servers"] if server["status"] == "down"]
    assert down["url"] == down_url and "Cannot reach Ollama" in down["reason"]
    assert set(body["traffic"]) >= {
        "requests_per_minute",
        "models",
        "recent_errors",
        "open_streams",
    }


def test_with_keys_on_the_page_asks_for_a_key(browser, gateway_factory, ollama_url, ollama):
    gateway = gateway_factory(ollama_url, API_KEYS=KEY)
    assert requests.get(f"{gateway.url}/status.json", timeout=30).status_code == 401
    browser.get(f"{gateway.url}/status")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    time.sleep(0.5)
    assert not browser.find_element(By.ID, "status").is_displayed()
    browser.find_element(By.ID, "key").send_keys("sk-wrong")
    browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
    wait_for(browser, lambda: browser.find_element(By.ID, "error").text)
    assert "Invalid or missing API key" in browser.find_element(By.ID, "error").text
    assert not browser.find_element(By.ID, "status").is_displayed()
    key_field = browser.find_element(By.ID, "key")
    key_field.clear()
    key_field.send_keys(KEY)
    browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
    wait_for(browser, lambda: browser.find_element(By.ID, "status").is_displayed())
    assert browser.find_element(By.ID, "error").text == ""
    assert KEY not in browser.current_url


TEAM = f"""
[keys.ops]
sha256 = "{hashlib.sha256(b"sk-ops-status-0123456789").hexdigest()}"
admin = true

[keys.dev]
sha256 = "{hashlib.sha256(b"sk-dev-status-0123456789").hexdigest()}"
"""


def test_with_named_keys_the_page_needs_an_admin_and_shows_each_keys_use(
    browser, gateway_factory, ollama_url, ollama, tmp_path
):
    team = tmp_path / "team.toml"
    team.write_text(TEAM)
    gateway = gateway_factory(ollama_url, TEAM_KEYS_FILE=str(team))
    with openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key="sk-dev-status-0123456789", max_retries=0
    ) as dev:
        dev.chat.completions.create(model="llama3.2", messages=HELLO)
    browser.get(f"{gateway.url}/status")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    browser.find_element(By.ID, "key").send_keys("sk-dev-status-0123456789")
    browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
    wait_for(browser, lambda: browser.find_element(By.ID, "error").text)
    assert "needs an admin key" in browser.find_element(By.ID, "error").text
    key_field = browser.find_element(By.ID, "key")
    key_field.clear()
    key_field.send_keys("sk-ops-status-0123456789")
    browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
    wait_for(browser, lambda: any(row[0] == "dev" for row in rows(browser, "keys")))
    [dev_row] = [row for row in rows(browser, "keys") if row[0] == "dev"]
    assert dev_row[1] == "1" and int(dev_row[2]) > 0 and int(dev_row[3]) > 0
