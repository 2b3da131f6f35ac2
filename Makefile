# One command per habit. `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run run-cluster cluster-services test test-cluster test-fast check bench train train-fast kb clean

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

# Several workers on this machine: Redis, PostgreSQL, WORKERS x `assistant serve` and nginx (README: "Several
# workers"). Data and logs under var/cluster/. Ctrl-C stops everything. CLUSTER_ARGS: e.g. --fake-models.
WORKERS ?= 2
CLUSTER_ARGS ?=
run-cluster: install cluster-services
	$(BIN)/assistant cluster --workers $(WORKERS) $(CLUSTER_ARGS)

# The Debian packages of the servers the cluster (and its tests) run, installed when missing.
cluster-services:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		echo "installing$$missing (apt-get)"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: install
	$(BIN)/python -m pytest -q

test-cluster: install cluster-services
	$(BIN)/python -m pytest -q -m cluster

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not browser"

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy assistant api eval

bench: install
	$(BIN)/assistant bench --calls 500 --duration 60 --naive-duration 30 --saturation-calls 128 \
		--saturation-duration 10 --json var/bench.json --plot var/bench.png

# The shipped full model (models/redflags/MODEL_CARD.md, "How to reproduce"): a model without a teacher, one distilled
# from it, and their weight average; about an hour on 2 CPU cores.
train: install
	$(BIN)/assistant train redflags --out var/redflags-v18 --head-pooling gated
	$(BIN)/assistant train redflags --out var/redflags-v19 --head-pooling gated --teacher var/redflags-v18 --distill-weight 0.25
	$(BIN)/assistant train average --out models/redflags var/redflags-v18 var/redflags-v19

# The fast model that CPUs without bf16 units run (ASSISTANT_REDFLAG_MODEL=auto): 3 layers, distilled from models/redflags,
# and its query map onto the four-layer retrieval encoder those CPUs run (a retrained model needs a new one).
train-fast: install
	$(BIN)/assistant train redflags --out models/redflags-fast --encoder-layers 3 --trainable-layers 2 \
		--teacher models/redflags
	$(BIN)/assistant train query-map --model models/redflags-fast --layers 4

kb: install
	$(BIN)/assistant kb build

clean:
	rm -rf var/index var/*.db build *.egg-info
