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
	$(BIN)/selfgym run selfgym/Guess-v0 --agent scripted --episodes 2 --run-dir runs/demo
	$(BIN)/selfgym eval selfgym/Guess-v0 --agent scripted -n 20 -k 2 --run-dir runs/demo --json runs/demo/eval.json
	@echo "demo: store and scores in runs/demo (eval.json)"

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done
