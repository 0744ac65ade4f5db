# Every target sets itself up: a fresh machine needs only Python 3.10+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: install test lint demo compat clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check tracer tests examples
	$(BIN)/ruff format --check tracer tests examples

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

compat: $(STAMP)
	$(BIN)/python tests/compat.py

demo: $(STAMP)
	$(BIN)/python examples/demo.py

clean:
	rm -rf $(VENV) .demo .compat .pytest_cache .ruff_cache
