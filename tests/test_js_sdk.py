"""The official OpenAI JavaScript SDK (``openai`` from npm, run with node) against the gateway.

``make test`` installs it first (``npm ci`` in tests/js). Missing node or modules fail the test
rather than skip it: a client that silently stops being tested is worse than a red build.
"""

import json
import shutil
import subprocess
from pathlib import Path

JS_DIR = Path(__file__).resolve().parent / "js"


def test_js_sdk_chat_stream_tools_and_embeddings(server, ollama):
    node = shutil.which("node")
    assert node, "node is not installed; the JavaScript SDK test needs node 20 or newer"
    assert (JS_DIR / "node_modules" / "openai").is_dir(), (
        "the JavaScript SDK is not installed: run `make test` (or `npm ci` in tests/js)"
    )
    ollama.tool_calls = [{"name": "get_weather", "arguments": {"city": "Tokyo"}}]
    result = subprocess.run(
        [node, "sdk_check.mjs", f"{server.url}/v1"],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["streamed"] == summary["chat"]
    assert summary["final"] == "From the tools: get_weather says sunny"
    assert summary["streamedToolCall"] == "get_weather"
    assert summary["embeddings"] == 2
    assert ollama.last_request("/api/embed").body["input"] == ["a", "b"]
