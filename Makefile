# Every target sets itself up: a fresh machine needs only Python 3.10+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: install test lint demo compat bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check tracer tests examples bench
	$(BIN)/ruff format --check tracer tests examples bench

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

compat: $(STAMP)
	$(BIN)/python tests/compat.py

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# The tracer against bare calls and mlflow.openai.autolog() (docs/performance.md); not in `test`.
bench: $(STAMP)
	$(BIN)/python bench/run.py

# The same with tiny sizes, to keep the benchmark working (CI); asserts nothing about time.
bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick

clean:
	rm -rf $(VENV) .demo .compat .bench .pytest_cache .ruff_cache
