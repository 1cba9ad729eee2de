# Developer entry points. Everything installs/starts what it needs by itself:
#   make test              venv + private Redis (127.0.0.1:6390) and PostgreSQL (127.0.0.1:5439) + the whole suite
#   make test-unit         the pure rules and clients (tests/unit): no Redis or database, a few seconds
#   make test-integration  the store on both databases, clients against the simulators, the CLI
#   make test-e2e          HTTP through the queue and real workers
#   make check             lint + typecheck + test
# Pass pytest arguments with ARGS, e.g. `make test ARGS="-x -k crypto"`.

SHELL := /bin/bash
VENV  := .venv
ARGS  ?=

.DEFAULT_GOAL := help
.PHONY: help install services stop test test-unit test-integration test-e2e lint typecheck check demo bench clean distclean

help:
	@echo "targets: install services stop test test-unit test-integration test-e2e lint typecheck check demo bench clean distclean"

install:
	bash scripts/bootstrap.sh

services:
	bash scripts/services.sh start

stop:
	bash scripts/services.sh stop

test:
	bash scripts/test.sh $(ARGS)

test-unit: install
	$(VENV)/bin/python -m pytest tests/unit -q $(ARGS)

test-integration:
	bash scripts/test.sh tests/integration $(ARGS)

test-e2e:
	bash scripts/test.sh tests/e2e $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy actions services simulators

check: lint typecheck test

demo:
	bash scripts/bootstrap.sh && $(VENV)/bin/qbo-actions demo

bench:
	bash scripts/bootstrap.sh && bash scripts/services.sh start && $(VENV)/bin/python scripts/bench.py

# Stops the private services and removes their data and caches (keeps .venv).
clean:
	-bash scripts/services.sh stop
	rm -rf .run build .pytest_cache .mypy_cache .ruff_cache *.egg-info
	find . -path ./.venv -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

# clean + remove the virtualenv.
distclean: clean
	rm -rf $(VENV)
