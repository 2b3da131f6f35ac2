# One command per habit. `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run test test-fast check bench train kb clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel

# torch is pinned and installed first so that no resolver pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/assistant serve

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not browser"

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy assistant api eval

bench: install
	$(BIN)/assistant bench --calls 500 --duration 60 --naive-duration 30 --saturation-calls 128 \
		--saturation-duration 10 --json var/bench.json --plot var/bench.png

train: install
	$(BIN)/assistant train redflags

kb: install
	$(BIN)/assistant kb build

clean:
	rm -rf var/index var/*.db build *.egg-info
