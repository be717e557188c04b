# Two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The stamp's name carries a hash of pyproject.toml, so a changed dependency list reinstalls
# and an unchanged one is a no-op.
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)
PYTEST_ARGS ?=

.PHONY: run test lint typecheck pytest bench install

run: $(STAMP)
	$(BIN)/paddler-tui

test: $(STAMP) lint typecheck pytest

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	rm -f $(VENV)/.installed-*
	$(BIN)/python -m pip install --quiet --upgrade pip
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check paddler_tui tests snapshots bench
	$(BIN)/ruff format --check paddler_tui tests snapshots bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy --strict paddler_tui tests bench snapshots

pytest: $(STAMP)
	@# The real-terminal test drives the TUI in tmux.
	command -v tmux >/dev/null || (apt-get update && apt-get install -y tmux)
	@# -rfE: the summary names every failure and error.
	$(BIN)/pytest -rfE $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench
