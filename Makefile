# The two commands of the README: `make demo` and `make test`. Everything else follows from them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: install demo test lint bench docs messages clean

# The compiled message catalogues (.mo) of the extension and the example app, made from their
# sources (.po), which are what the repository holds; a wheel's build compiles the extension's
# itself (setup.py).
CATALOGUES := $(wildcard flask_ucloud_2fa/translations/*/LC_MESSAGES/*.po \
	example_app/translations/*/LC_MESSAGES/*.po)
COMPILED := $(CATALOGUES:.po=.mo)

install: $(VENV)/.installed $(COMPILED)

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
demo: $(VENV)/.demo-installed $(COMPILED)
	$(BIN)/python -m example_app.demo --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest

# Fuzzy entries are left out (a translation nobody confirmed is not shown). Both installs bring
# pybabel (Flask-Babel's Babel); the one of `make install` marks the demo's as done too.
%.mo: %.po | $(VENV)/.demo-installed
	$(BIN)/pybabel compile -i $< -o $@

# After a user-visible string changed: extract the messages of the extension and of the example
# app and merge them into every catalogue (.po) of theirs; then translate what is new or fuzzy
# (tests/test_translations.py says what is missing) and run `make install` to compile them.
# The keywords are those of the babel.cfg files, for a Babel older than 2.18 that reads none there.
messages: install
	$(BIN)/pybabel extract -F babel.cfg -k _2fa -k _2fa_plural:1,2 -c TRANSLATORS: --sort-by-file \
		-o flask_ucloud_2fa/translations/flask_ucloud_2fa.pot .
	$(BIN)/pybabel update -i flask_ucloud_2fa/translations/flask_ucloud_2fa.pot \
		-d flask_ucloud_2fa/translations -D flask_ucloud_2fa
	$(BIN)/pybabel extract -F example_app/babel.cfg -k _l -c TRANSLATORS: --sort-by-file \
		-o example_app/translations/messages.pot .
	$(BIN)/pybabel update -i example_app/translations/messages.pot \
		-d example_app/translations -D messages

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
	rm -f $(COMPILED)
