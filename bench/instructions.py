"""Instructions per request in the Flask app, counted by valgrind: a figure that, unlike
seconds, does not move with what else the machine is doing.

The app (no gunicorn) is called as WSGI for non-streamed chat, one request after another,
against the stand-in in its own process (not counted). valgrind's callgrind counts the whole
process twice, with a few and with many requests; the difference divided by the extra
requests leaves out start-up. Needs valgrind (Debian's package); about a minute per target.

    python -m bench.instructions [--root DIR] [--features off|on] [--env NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from ollama_standin import ROOT

FEW, MANY = 50, 250


def count(root: Path, requests: int, features: str, env: list[str]) -> int:
    """Instructions callgrind counts for a process that serves ``requests`` requests."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "bench.instructions",
        "--serve",
        str(requests),
        "--root",
        str(root),
        "--features",
        features,
        *(f"--env={item}" for item in env),
    ]
    # This checkout gives bench and the stand-in; the app comes from ``root`` (serve).
    done = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"the measured process failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def serve(root: Path, requests: int, features: str, env: list[str]) -> None:
    """In the measured process: warm up, then ``requests`` non-streamed chats."""
    from gevent import monkey

    monkey.patch_all()
    import io
    import json

    from bench.run import FEATURES_OFF, FEATURES_ON, Standin

    standin = Standin()
    standin.configure(reply="The sky is blue because of Rayleigh scattering of sunlight.")
    settings = dict(FEATURES_ON if features == "on" else FEATURES_OFF)
    settings.update(
        DEFAULT_MAX_TOKENS="",
        SERVER_SLOTS="100000",
        OLLAMA_BASE_URL=standin.url,
        XDG_STATE_HOME=tempfile.mkdtemp(),
        **dict(item.split("=", 1) for item in env),
    )
    os.environ.update(settings)
    sys.path.insert(0, str(root))
    from ollama_openai import create_app

    print(f"measuring {sys.modules['ollama_openai'].__file__}", file=sys.stderr)

    app = create_app()
    body = json.dumps(
        {"model": "llama3.2", "messages": [{"role": "user", "content": "Why is the sky blue?"}]}
    ).encode()
    statuses: list[str] = []

    def one() -> None:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/v1/chat/completions",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/json",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1:8000",
            "HTTP_AUTHORIZATION": "Bearer sk-bench",
        }
        answer = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
        b"".join(answer)
        answer.close()  # type: ignore[attr-defined]

    try:
        for _ in range(300 + requests):
            one()
    finally:
        standin.stop()
    if not all(status.startswith("200") for status in statuses):
        raise SystemExit(f"not every request was answered 200: {set(statuses)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure")
    parser.add_argument("--features", choices=("off", "on"), default="off")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the app")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.root, args.serve, args.features, args.env)
        return
    root = args.root.resolve()
    few = count(root, FEW, args.features, args.env)
    many = count(root, MANY, args.features, args.env)
    per_request = (many - few) / (MANY - FEW)
    extra = " ".join(args.env)
    print(f"{root} features {args.features} {extra}: {per_request:,.0f} instructions per request")


if __name__ == "__main__":
    main()
