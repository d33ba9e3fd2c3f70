"""The least the design card's stack can do, for ``bench.floor``: two Flask apps served by the
same gunicorn + gevent worker as the gateway.

``echo`` answers a chat itself (no Ollama): what gunicorn and Flask alone cost. ``relay`` is the
naive gateway (Flask, one ``requests.Session``, ``stream=True``, no checks, no features): what
one call to Ollama through the stack costs before any of the gateway's own work.
"""

from __future__ import annotations

import json
import os

import requests
from flask import Flask, Response, request

echo = Flask("echo")
relay = Flask("relay")
_session = requests.Session()
_CHUNK = {"id": "chatcmpl-floor", "object": "chat.completion.chunk", "model": "floor"}


@echo.post("/v1/chat/completions")
def echo_chat() -> Response:
    body = request.get_json()
    if not body.get("stream"):
        message = {"role": "assistant", "content": "p0"}
        return Response(json.dumps({"choices": [{"index": 0, "message": message}]}))

    def events():
        yield b"data: " + json.dumps(_chunk("p0", True)).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    return Response(events(), mimetype="text/event-stream")


@relay.post("/v1/chat/completions")
def relay_chat() -> Response:
    body = request.get_json()
    payload = {"model": body["model"], "messages": body["messages"], "stream": body["stream"]}
    upstream = _session.post(os.environ["OLLAMA_BASE_URL"] + "/api/chat", json=payload, stream=True)
    if not payload["stream"]:
        answer = upstream.json()
        return Response(json.dumps({"choices": [{"index": 0, "message": answer["message"]}]}))

    def events():
        for line in upstream.iter_lines():
            piece = json.loads(line)
            chunk = _chunk(piece["message"]["content"], piece["done"])
            yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    return Response(events(), mimetype="text/event-stream")


def _chunk(content: str, done: bool) -> dict:
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": "stop" if done else None}
    return {**_CHUNK, "choices": [choice]}
