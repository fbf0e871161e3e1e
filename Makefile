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

$(VENV)/.bench-deps: pyproject.toml $(VENV)/.test-deps
	$(BIN)/python -m pip install --quiet -e '.[fast,test,bench]'
	@touch $@

# wrk (Debian package) drives the non-stream scenarios: installed here when we are root on Debian, else asked for.
bench: $(VENV)/.bench-deps  ## measure throughput and added latency against the floor and direct (BENCHMARKS.md)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get install -y wrk; } \
	  || { echo "make bench needs wrk: run 'sudo apt-get install -y wrk' (Debian/Ubuntu) and retry" >&2; exit 1; }
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info build dist bench/out
