"""The real servers tests and the benchmark run beside the stand-in, on loopback.

This module owns starting and stopping them: the gateway as it is deployed (gunicorn with gevent
workers, from `gunicorn.conf.py`) and `redis-server` for rate limits shared by several gateways.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ollama_standin.serving import free_port, wait_for_port

# The repository: gunicorn runs from here to find gunicorn.conf.py and wsgi.py.
ROOT = Path(__file__).resolve().parent.parent


# How the gateway is started: gunicorn itself, or ``python -m ollama_openai`` as operators do
# (it checks WEB_CONCURRENCY, then becomes the same gunicorn).
GUNICORN = ("-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app")
LAUNCHER = ("-m", "ollama_openai")


class GatewayProcess:
    """``gunicorn -c gunicorn.conf.py wsgi:app`` (or ``command``) with the given environment, on
    a free port; ``root`` is the source tree it runs from (another checkout, for the benchmark)."""

    def __init__(
        self,
        ollama_url: str,
        log_path: Path,
        command: tuple[str, ...] = GUNICORN,
        root: Path = ROOT,
        **env: str,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        environment = {
            **os.environ,
            "OLLAMA_BASE_URL": ollama_url,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "1",
            **env,
        }
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, *command],
            cwd=root,
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"gunicorn did not start:\n{self.log()}") from None

    def log(self) -> str:
        """What gunicorn and the app printed so far."""
        return self.log_path.read_text(errors="replace")

    def workers(self) -> list[int]:
        """The pids of gunicorn's workers now (Linux: the master's children in /proc)."""
        pid = self.process.pid
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as children:
                return [int(child) for child in children.read().split()]
        except FileNotFoundError:
            return []

    def worker_pid(self) -> int:
        """The pid of the master's first worker (the one, with WEB_CONCURRENCY=1)."""
        workers = self.workers()
        if not workers:
            raise RuntimeError("no gunicorn worker found")
        return workers[0]

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful), then SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def rss_kib(pid: int) -> int:
    """The resident memory of a process, in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class RedisProcess:
    """``redis-server`` on a free loopback port, without persistence; fails if it is missing."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        _terminate(self.process)


class StandinProcess:
    """``python -m ollama_standin``: the stand-in served under gevent in a process of its own,
    keeping connections alive as Ollama (Go's net/http) does; controlled over ``/_standin/*``.
    ``port``: a given one (to start it again where a gateway expects it), else a free one."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ollama_standin", "--port", str(self.port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        _terminate(self.process)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it is still there after 10 s."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
