"""The WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app`` (or ``flask --app wsgi run``)."""

import sys

from ollama_openai import create_app
from ollama_openai.config import ConfigError

try:
    app = create_app()
except ConfigError as error:
    sys.exit(f"ollama-openai: {error}")
