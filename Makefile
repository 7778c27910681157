# The README's two commands are `make run` and `make test`; the rest serve development.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Benchmarks read the shared data sets; override with `make eval SHARED=/path/to/data`.
SHARED ?= ../shared/data
RESULTS ?= docs/results

.PHONY: install run test test-all lint eval bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[serve,dev]"
	touch $(STAMP)

install: $(STAMP)  ## the environment only

run: install  ## index the bundled demo collection and serve it on http://127.0.0.1:8000
	$(BIN)/imsearch demo var/demo
	$(BIN)/imsearch index var/demo/collection --data-dir var/demo-data
	$(BIN)/imsearch serve --data-dir var/demo-data

test: install  ## the test suite (what CI runs)
	$(BIN)/python -m pytest -q

test-all: install  ## also the slow tests that need ../shared
	$(BIN)/python -m pytest -q -m ""

lint: install
	$(BIN)/ruff check imsearch services tests
	$(BIN)/mypy

eval: install  ## quality of the default configuration on SMVS DVD covers
	mkdir -p $(RESULTS)
	$(BIN)/imsearch eval $(SHARED)/smvs-dvd --json $(RESULTS)/eval-smvs-default.json

bench: install  ## descriptor grid on SMVS, then the ANN families at 10k/100k/1M (hours on 2 cores)
	$(BIN)/pip install --quiet -e ".[serve,dev,bench]"
	mkdir -p $(RESULTS)
	$(BIN)/imsearch bench features $(SHARED)/smvs-dvd --json $(RESULTS)/bench-features-smvs.json
	$(BIN)/imsearch bench ann --sizes 10000,100000,1000000 --json $(RESULTS)/bench-ann.json

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
