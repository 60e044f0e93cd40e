# Two commands: `make dev` runs the whole system locally, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test chromium lint format clean vendor-web

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the project definition changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/ftl dev

# The browser test drives Debian's chromium; install it when missing and we may (root, apt).
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	  echo "note: chromium not installed; the browser test will be skipped"; }

test: $(STAMP) chromium
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check ftl tests scripts
	$(BIN)/ruff format --check ftl tests scripts
	$(BIN)/mypy --strict ftl
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format ftl tests scripts
	$(BIN)/ruff check --fix ftl tests scripts

clean:
	rm -rf $(VENV) .ftl build dist

# Upgrade the vendored MessagePack codec of the web client (needs npm; the result is committed).
vendor-web:
	bash scripts/vendor_web.sh
