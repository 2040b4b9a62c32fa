# Every target creates .venv and installs what it needs, so each works on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-local test lint typecheck pytest bench bench-slow clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m examples.cluster_demo
	@echo; echo "== contracts: a sealed-bid auction run as an actor pipeline across three nodes"
	$(BIN)/python -m examples.bid_auction
	@echo; echo "== chaos: split-brain name registrations under partitions, five simulated nodes"
	$(BIN)/ember chaos run partition-heal-names --driver sim --out .ember/demo-chaos

demo-local: $(STAMP)
	$(BIN)/python -m examples.demo

lint: $(STAMP)
	$(BIN)/ruff check ember tests bench examples
	$(BIN)/ruff format --check ember tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy --strict ember

pytest: $(STAMP)
	$(BIN)/pytest -q --durations=15

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info
