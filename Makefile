# Every target sets itself up: a fresh machine needs only Python 3.10+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: install test lint typecheck demo compat bench bench-quick profile screenshots docs clean

# The dev extra names llm-devserver, the local LLM server: it is installed from devserver/ in the
# same pip call (it is not on any index).
$(STAMP): pyproject.toml devserver/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./devserver -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check tracer devserver tests examples bench scripts
	$(BIN)/ruff format --check tracer devserver tests examples bench scripts

# mypy --strict on the package (settings in pyproject.toml), then on the public API as used.
typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --strict tests/typing_public_api.py

# Every test but the slow end-to-end ones (marked e2e: `make compat` runs them), on pytest-xdist
# workers; four on two cores, as the tests spend much of their time waiting on servers.
TEST_WORKERS ?= 4
test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m "not e2e"

# The end-to-end tests (marked e2e), then the integration suites against each SDK version.
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

# Where the tracer's time goes on the caller's thread, per workload (docs/performance.md);
# then the export process's CPU time per trace, by phase.
profile: $(STAMP)
	$(BIN)/python bench/profile.py
	$(BIN)/python bench/profile_export.py

# MLflow UI pictures for the README (docs/images/): a real mlflow server, the demo's traces,
# headless Chromium (apt-get installs it if missing, as root); not in `test`.
screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

# The documentation site (mkdocs.yml, docs/) in strict mode: a broken link fails the build.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir .site

clean:
	rm -rf $(VENV) .demo .compat .bench .pytest_cache .ruff_cache .mypy_cache .site
