# Two entry points: `make run` starts the app, `make test` runs the suite.
# Both create .venv and install the project on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

# Byte-compiled up front: where PYTHONDONTWRITEBYTECODE is set, every start would otherwise
# compile the engine again (about 0.1 s of the first page).
run: $(VENV)/.installed
	$(BIN)/python -m compileall -q app ui
	$(BIN)/streamlit run app --server.address 127.0.0.1

# The browser test drives Debian's Chromium (never `playwright install`).
$(CHROMIUM):
	$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium

# Lint, the layering contracts (pyproject.toml), then the suite across both cores.
test: $(VENV)/.installed-dev $(CHROMIUM)
	$(BIN)/ruff check app pages ui tests bench templates
	$(BIN)/lint-imports
	$(BIN)/pytest -q -n 2 --dist worksteal --durations=15

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/bench_graph.py
