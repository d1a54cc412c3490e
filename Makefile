# The two commands of the README: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.selfgym-installed

.PHONY: setup demo test lint bench results

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py constraints.txt scripts/setup.sh
	VENV=$(VENV) PYTHON=$(PYTHON) bash scripts/setup.sh
	touch $@

demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/selfgym train configs/demo.toml --run-dir runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Every benchmark but the method table, which trains a model per method (hours): `make results`.
bench: $(STAMP)
	for b in bench/*.py; do [ $$b = bench/methods.py ] || $(BIN)/python $$b || exit 1; done

results: $(STAMP)
	$(BIN)/python bench/methods.py
