# The two commands of the README: `make demo` and `make test`. Everything else follows from them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: install demo test lint bench docs clean

install: $(VENV)/.installed

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.10 or newer is needed; run make PYTHON=python3.x" if sys.version_info < (3, 10) else 0)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Everything for the tests, docs and linters (the dev extra). Rebuilt only when the package
# metadata changes, so `make test` twice installs once. The dev extra holds the demo's packages
# too, so it stands for the demo's install as well.
$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.demo-installed

# Only what the demo runs: the runtime dependencies and the demo extra, no development tool.
$(VENV)/.demo-installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $@

# HOST and PORT choose where it listens (on macOS the AirPlay Receiver takes port 5000).
demo: $(VENV)/.demo-installed
	$(BIN)/python -m example_app.demo --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest

# The performance figures of docs/performance.rst, each script adding its section to
# bench/results.json: in process, over HTTP, at a million users, beside Flask-Security-Too, and
# under sustained mixed load on PostgreSQL with 4 workers.
# BENCH_ARGS=--quick runs them all in about two minutes. PostgreSQL and wrk are used when
# present; the mixed load needs PostgreSQL.
bench: install $(VENV)/.bench-installed
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/load.py $(BENCH_ARGS)
	$(BIN)/python bench/scale.py $(BENCH_ARGS)
	$(BIN)/python bench/compare.py $(BENCH_ARGS)
	$(BIN)/python bench/mixed.py $(BENCH_ARGS)

$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

# The Sphinx site, warnings as errors (tests/test_docs_build.py does the same in `make test`).
docs: install
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy flask_ucloud_2fa
	$(BIN)/bandit -q -r flask_ucloud_2fa example_app

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache docs/_build
