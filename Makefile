# Two commands: `make dev` runs the whole system locally, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test test-external lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the project definition changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/ftl dev

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check ftl tests scripts
	$(BIN)/ruff format --check ftl tests scripts
	$(BIN)/mypy --strict ftl

format: $(STAMP)
	$(BIN)/ruff format ftl tests scripts
	$(BIN)/ruff check --fix ftl tests scripts

clean:
	rm -rf $(VENV) .ftl build dist
