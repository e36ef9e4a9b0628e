# Two commands do all the set-up: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.10 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-pythons lint typecheck unit bench bench-quick clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mooring demo

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck unit

# The suite on the oldest supported Python and the newest one installed, each in its own venv
# (.venv-3.10, .venv-3.13, ...). Not part of `make test`: it installs the dev extra twice more.
TEST_PYTHONS ?= 3.10 $(lastword $(sort $(foreach v,3.11 3.12 3.13 3.14,$(if $(shell command -v python$(v)),$(v)))))
test-pythons:
	@set -e; for v in $(TEST_PYTHONS); do \
	  command -v python$$v >/dev/null || { echo "python$$v not found"; exit 1; }; \
	  test -x .venv-$$v/bin/python || python$$v -m venv .venv-$$v; \
	  .venv-$$v/bin/python -m pip install --quiet -e '.[dev]'; \
	  echo "== Python $$v"; .venv-$$v/bin/python -m pytest -q -p no:cacheprovider; \
	done

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .venv-3.* .mypy_cache .ruff_cache .pytest_cache
