# The two commands of the README: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.selfgym-installed

.PHONY: setup demo test lint bench

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

bench: $(STAMP)
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done
