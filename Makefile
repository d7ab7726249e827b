# IngestionAgent developer entry points; `make help` lists them.
#
# Everything runs from the repo-root virtualenv .venv; the services (NATS with JetStream,
# PostgreSQL, Redis) are the ones config.toml and the INGEST_* environment name, started locally
# on loopback when they do not answer. `make setup` does all the set-up (.venv, the services and
# the tests' database); `make test` only runs pytest (in parallel workers, see PYTEST_WORKERS),
# which stops at once, naming the service, when integration tests are selected and a service
# does not answer.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PYTHON VENV

# The offline demo's emulator (scripts/demo.sh).
EMULATOR_HOST ?= 127.0.0.1
EMULATOR_PORT ?= 8765
export EMULATOR_HOST EMULATOR_PORT

# The tests' PostgreSQL database (tests/integration read TEST_POSTGRES_DSN, same default).
TEST_POSTGRES_DSN ?= postgresql://postgres@127.0.0.1:5432/test
export TEST_POSTGRES_DSN
# `make test` runs the suite in PYTEST_WORKERS pytest-xdist worker processes; most tests wait on
# services and subprocesses, so more workers than cores pays. --dist loadgroup hands tests out one
# by one, except that the tests of one xdist_group mark run on one worker (a module fixture they
# share, or a fixed resource such as the demo's log). Serially (debugging): PYTEST_ARGS=-n0.
PYTEST_WORKERS ?= 4
# Extra pytest arguments (after the worker options, so they win), e.g.
# make test PYTEST_ARGS='-m "not slow" -x', or PYTEST_ARGS='-n0 tests/unit' to run serially
PYTEST_ARGS ?=

.PHONY: help setup venv services demo demo-once live test lint bench clean distclean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: venv ## everything the tests need: .venv, the services and the tests' database
	@$(BIN)/python scripts/ensure_services.py --also-postgres "$$TEST_POSTGRES_DSN"

venv: ## create .venv and install the package + dev tools (pinned by constraints.txt)
	@bash scripts/setup-venv.sh

services: venv ## make sure NATS (JetStream), PostgreSQL and Redis answer; start local ones
	@$(BIN)/python scripts/ensure_services.py

demo: venv services ## offline: bundled Yahoo emulator + the engine until Ctrl-C
	@bash scripts/demo.sh run

demo-once: venv services ## offline: emulator + one engine cycle, then exit
	@bash scripts/demo.sh run --once

live: venv services ## the engine against the real Yahoo Finance (needs internet)
	$(BIN)/ingestion-agent run

test: ## the whole test suite in parallel (unit, emulator, integration, fault); `make setup` first
	@[ -x $(BIN)/pytest ] || { echo "make test: $(BIN)/pytest missing: run 'make setup' first" >&2; exit 1; }
	@rc=0; $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests: that is a failure" >&2; fi; \
	exit $$rc

lint: venv ## ruff check, ruff format --check, mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict engine testkit scripts/ensure_services.py

bench: venv services ## the cycle benchmark (bench/cycle.py)
	$(BIN)/python bench/cycle.py

clean: ## remove caches and build output (keeps .venv and var/spill)
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache var/demo
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## also remove .venv
	rm -rf $(VENV)
