"""A stand-in for Ollama's native HTTP API, served over real sockets for tests and the benchmark.

It answers `/`, `/api/version`, `/api/tags`, `/api/ps`, `/api/show`, `/api/chat`,
`/api/generate` and `/api/embed` as described in /work/shared/ollama-api.md and Ollama's
`server/routes.go`; its knobs make it behave and misbehave like a real Ollama (slots, a full
queue, load times and evictions, slow tokens, error statuses, an error line mid-stream, a
dropped connection, a corrupt line); it records what clients sent and what it answered.

```
wire.py        Go's JSON, timestamps, request decoding with Go's errors, JSON/NDJSON answers
models.py      installed models: names, /api/tags entries, /api/show and /api/ps bodies
generation.py  what the model produces: reply, thinking, tool calls, stop, context window,
               logprobs, counters
connection.py  noticing a client that hangs up between tokens; hanging up on one
knobs.py       Knob: a fault knob, type-checked wherever it is set
scheduler.py   Ollama's scheduler: slots per loaded model, a bounded queue, load time, eviction
state.py       StandinState: the knobs, installed and loaded models, the record
app.py         OllamaStandin: the WSGI app, routes, streaming with faults, /_standin/*
serving.py     StandinServer (a thread), main() under gevent, free_port, wait_for_port
processes.py   GatewayProcess (gunicorn + gevent) and RedisProcess, run beside the stand-in
```

`python -m ollama_standin --port N` serves it under gevent, controlled over HTTP:
`POST /_standin/config` (knob values), `POST /_standin/reset`, `GET /_standin/state`.
"""

from ollama_standin.app import OllamaStandin
from ollama_standin.generation import tokenize
from ollama_standin.models import default_models, tags_entry
from ollama_standin.processes import ROOT, GatewayProcess, RedisProcess, rss_kib
from ollama_standin.serving import StandinServer, free_port, wait_for_port
from ollama_standin.state import KNOBS, RecordedRequest
from ollama_standin.wire import go_json

__all__ = [
    "KNOBS",
    "ROOT",
    "GatewayProcess",
    "OllamaStandin",
    "RecordedRequest",
    "RedisProcess",
    "StandinServer",
    "default_models",
    "free_port",
    "go_json",
    "rss_kib",
    "tags_entry",
    "tokenize",
    "wait_for_port",
]
