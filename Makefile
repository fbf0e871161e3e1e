# Two commands do everything on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= providers.yaml
HOST   ?=
PORT   ?=
ARGS   ?=

.PHONY: run test lint fmt bench clean container-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-deps: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[fast]'
	@touch $@

$(VENV)/.test-deps: pyproject.toml $(VENV)/.run-deps
	$(BIN)/python -m pip install --quiet -e '.[fast,test]'
	@touch $@

run: $(VENV)/.run-deps  ## start the proxy on 127.0.0.1:8787 with ./providers.yaml and ./nextmodel.db
	$(BIN)/nmproxy serve --config $(CONFIG) $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT)) $(ARGS)

test: $(VENV)/.test-deps  ## install test dependencies and run the whole suite
	$(BIN)/python -m pytest -q

lint: $(VENV)/.test-deps
	$(BIN)/ruff check nextmodel_proxy tests bench
	$(BIN)/ruff format --check nextmodel_proxy tests bench
	$(BIN)/hadolint --failure-threshold warning Dockerfile

container-test:  ## build the Dockerfile with podman and smoke-test the image on 127.0.0.1 (root; see README)
	bash tests/container/smoke.sh

fmt: $(VENV)/.test-deps
	$(BIN)/ruff format nextmodel_proxy tests bench

bench: $(VENV)/.test-deps  ## measure throughput and added latency (see BENCHMARKS.md)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info build dist bench/out
