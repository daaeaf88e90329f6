# cxstream: the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo services stop test unit lint bench clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint requirements.lock --editable '.[dev]'
	touch $(STAMP)

## install: a virtualenv in .venv with cxstream and its pinned dependencies
install: $(STAMP)

## demo: install, then run the flow over the shipped sample (no servers needed)
demo: install
	$(BIN)/cxstream demo --out out/demo

## services: install (if missing) and start Redis and Kafka on 127.0.0.1, and a 3-primary
## Redis Cluster on 127.0.0.1:7001-7006 (the cluster tests); install Prometheus
## (the Prometheus test starts its own server) and check its config and alert rules; install
## Debian's chromium (the agent-desktop test drives it; the report test renders the report in it)
services:
	bash scripts/services.sh start
	bash scripts/redis_cluster.sh start
	bash scripts/prometheus.sh install
	bash scripts/prometheus.sh check
	bash scripts/chromium.sh install

stop:
	bash scripts/services.sh stop
	bash scripts/redis_cluster.sh stop

## lint: ruff and strict mypy over the packages
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## test: install, start the services, lint, and run every test (unit, integration, doctests)
test: install services lint
	$(BIN)/pytest

## unit: the tests that need no services
unit: install
	$(BIN)/pytest -m "not integration"

## bench: the full-pipeline benchmark against the local Kafka and Redis (benchmarks/, not in the wheel)
bench: install services
	$(BIN)/python -m benchmarks

clean:
	rm -rf out build *.egg-info .pytest_cache .mypy_cache .ruff_cache
