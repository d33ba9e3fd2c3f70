# ollama-openai: every target works from a fresh clone (it creates .venv as needed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1

# System programs the end-to-end tests run for real (installed with apt-get where missing), as
# program:Debian package: nginx in front of gunicorn, redis-server for limits and stored
# responses shared by several gateways, Chromium and its driver for the browser tests.
SYSTEM_PROGRAMS := nginx:nginx redis-server:redis-server chromium:chromium chromedriver:chromium-driver
# The npm clients the tests run: the official JavaScript SDK (tests/test_js_sdk.py), the Vercel
# AI SDK (tests/test_ai_sdk.py) and Codex CLI (tests/test_codex.py); needs node and npm on the
# machine.
JS_SDK := tests/js/node_modules/.installed

.PHONY: install install-dev system-deps js-sdk run dev test test-unit lint format bench bench-routing bench-store clean

install: $(VENV)/.runtime-installed

install-dev: $(VENV)/.dev-installed

$(VENV)/.runtime-installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.runtime-installed requirements-dev.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Production-style server: gunicorn with gevent workers, settings from gunicorn.conf.py
# (python -m ollama_openai checks WEB_CONCURRENCY, which gunicorn reads too early, first).
run: install
	$(BIN)/python -m ollama_openai

# Flask's reloading development server on the same port (local clients only by default).
dev: install
	$(BIN)/flask --app wsgi:app run --debug --host $(HOST) --port $(PORT)

test: install-dev system-deps js-sdk lint
	$(BIN)/python -m pytest

# The quick loop: every test not marked e2e (nothing started under gunicorn, no nginx,
# redis-server or node), in seconds and without root.
test-unit: install-dev
	$(BIN)/python -m pytest -m "not e2e"

js-sdk: $(JS_SDK)

# Exactly the versions package-lock.json pins; re-run only when the pins change.
$(JS_SDK): tests/js/package.json tests/js/package-lock.json
	cd tests/js && npm ci --no-audit --no-fund
	touch $@

system-deps:
	@missing=""; for entry in $(SYSTEM_PROGRAMS); do \
		program=$${entry%%:*}; package=$${entry#*:}; \
		command -v $$program >/dev/null 2>&1 || test -x /usr/sbin/$$program || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing with apt-get:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# The benchmark of issue 3: gunicorn + gevent against a fast Ollama stand-in (several minutes).
# BEFORE=DIR measures another checkout beside this one in the same run (git worktree add DIR
# main); BENCH_ARGS passes options (python -m bench.run --help). Then bench.floor: what gunicorn
# + Flask alone and a naive Flask + requests relay add over Ollama, beside the gateway.
bench: install-dev
	$(BIN)/python -m bench.run $(if $(BEFORE),--before $(BEFORE)) $(BENCH_ARGS)
	$(BIN)/python -m bench.floor
	$(BIN)/python -m bench.routing

# Issue 13's comparison alone: warm routing against least-in-flight on two stand-ins that load
# one model at a time (about a minute).
bench-routing: install-dev
	$(BIN)/python -m bench.routing

# The shared stores alone: the response store (save, load, chain) and the usage ledger (record,
# budget read, slot), per backend, and a key check (needs redis-server; seconds).
bench-store: install-dev system-deps
	$(BIN)/python -m bench.response_store
	$(BIN)/python -m bench.usage_store

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache tests/js/node_modules
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
