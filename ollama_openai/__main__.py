"""``python -m ollama_openai``: gunicorn with ``gunicorn.conf.py`` and ``wsgi:app``, as deployed.

gunicorn reads WEB_CONCURRENCY as soon as it is imported, so a value that is no number stopped
it with a traceback before ``gunicorn.conf.py`` could name the variable. It is checked here
first; every other setting is checked by ``gunicorn.conf.py``, each with the one-line error
the README promises. The process then becomes gunicorn (same pid, for systemd and signals).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .config import ConfigError, whole_number

ROOT = Path(__file__).resolve().parent.parent


def main(arguments: list[str]) -> None:
    """Check WEB_CONCURRENCY, then replace this process with gunicorn (extra ``arguments`` are
    gunicorn's)."""
    try:
        whole_number("WEB_CONCURRENCY", 1)
    except ConfigError as error:
        sys.exit(f"ollama-openai: {error}")
    config = str(ROOT / "gunicorn.conf.py")
    command = [sys.executable, "-m", "gunicorn", "-c", config, "--chdir", str(ROOT)]
    os.execv(sys.executable, [*command, *arguments, "wsgi:app"])


if __name__ == "__main__":
    main(sys.argv[1:])
