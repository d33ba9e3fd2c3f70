"""Codex CLI (``@openai/codex`` from npm, pinned in tests/js) with the gateway as its model
provider, and the request it sends on a first turn (captured from 0.169 with a tiny server as
its base URL: tests/data/codex-0.169-first-turn.json)."""

import json
import os
import subprocess
from pathlib import Path

import requests

TESTS = Path(__file__).resolve().parent
CODEX = TESTS / "js" / "node_modules" / ".bin" / "codex"
FIRST_TURN = json.loads((TESTS / "data" / "codex-0.169-first-turn.json").read_text())


def run_codex(server, tmp_path, prompt):
    """``codex exec`` with its own CODEX_HOME whose config.toml points at the gateway."""
    assert CODEX.exists(), "Codex CLI is not installed: run `make test` (or `npm ci` in tests/js)"
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        'model = "llama3.2"\n'
        'model_provider = "gateway"\n'
        "[model_providers.gateway]\n"
        'name = "ollama-openai"\n'
        f'base_url = "{server.url}/v1"\n'
        'wire_api = "responses"\n'
        'env_key = "GATEWAY_KEY"\n'
    )
    work = tmp_path / "work"
    work.mkdir()
    environment = {**os.environ, "CODEX_HOME": str(home), "GATEWAY_KEY": "test-key"}
    return subprocess.run(
        [str(CODEX), "exec", "--skip-git-repo-check", prompt],
        cwd=work,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_codex_exec_answers_a_prompt_through_the_gateway(server, ollama, tmp_path):
    result = run_codex(server, tmp_path, "Say hello")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "Hello! You said: Say hello"
    [chat] = [r.body for r in ollama.requests if r.path == "/api/chat"]
    assert chat["stream"] is True
    assert chat["messages"][-1] == {"role": "user", "content": "Say hello"}
    offered = {tool["function"]["name"] for tool in chat["tools"]}
    # Its own functions and its namespace's, flat; web_search is not offered.
    assert {"exec_command", "close_agent"} <= offered and "web_search" not in offered


def test_codex_runs_its_shell_tool_and_completes_the_turn(server, ollama, tmp_path):
    ollama.tool_calls = [{"name": "exec_command", "arguments": {"cmd": "echo codex-was-here"}}]
    result = run_codex(server, tmp_path, "Run echo")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "codex-was-here" in result.stdout
    first, second = [r.body for r in ollama.requests if r.path == "/api/chat"]
    assert first["messages"][-1] == {"role": "user", "content": "Run echo"}
    [call] = second["messages"][-2]["tool_calls"]
    assert call["function"] == {"name": "exec_command", "arguments": {"cmd": "echo codex-was-here"}}
    result_message = second["messages"][-1]
    assert result_message["role"] == "tool" and result_message["tool_name"] == "exec_command"
    assert "codex-was-here" in result_message["content"]


def test_codex_first_turn_capture_streams_to_completion(server, ollama):
    with requests.post(
        f"{server.url}/v1/responses",
        json=FIRST_TURN,
        headers={"accept": "text/event-stream", "originator": "codex_exec"},
        stream=True,
        timeout=30,
    ) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in answer.iter_lines(decode_unicode=True) if line]
    names = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    data = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    assert names == [event["type"] for event in data]
    assert names[0] == "response.created" and names[-1] == "response.completed"
    completed = data[-1]["response"]
    assert completed["store"] is False
    assert completed["usage"]["input_tokens_details"] == {"cached_tokens": 0}
    assert [item["type"] for item in completed["output"]] == ["message"]
