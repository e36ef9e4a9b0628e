# Two commands do all the set-up: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.10 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-pythons lint typecheck unit bench bench-quick docs clean

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
# An interpreter is python3.X on PATH if it runs, else one installed by pyenv.
FIND_PYTHON = v=$$1; p=$$(command -v python$$v 2>/dev/null); if [ -n "$$p" ] && "$$p" -c "" 2>/dev/null; then echo "$$p"; \
  else ls -d "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/$$v.*/bin/python$$v 2>/dev/null | tail -n 1; fi
NEWEST_PYTHON := $(shell for v in 3.14 3.13 3.12 3.11; do sh -c '$(FIND_PYTHON)' _ $$v | grep -q . && { echo $$v; break; }; done)
TEST_PYTHONS ?= 3.10 $(NEWEST_PYTHON)
test-pythons:
	@set -e; for v in $(TEST_PYTHONS); do \
	  py=$$(sh -c '$(FIND_PYTHON)' _ $$v); \
	  test -n "$$py" || { echo "Python $$v not found (on PATH or under pyenv)"; exit 1; }; \
	  test -x .venv-$$v/bin/python || "$$py" -m venv .venv-$$v; \
	  .venv-$$v/bin/python -m pip install --quiet -e '.[dev]'; \
	  echo "== Python $$v ($$py)"; .venv-$$v/bin/python -m pytest -q -p no:cacheprovider; \
	done

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

# The documentation site, built offline into site/ (the docs extra is part of dev).
docs: $(STAMP)
	$(BIN)/python -m mkdocs build --strict -d site

clean:
	rm -rf $(VENV) .venv-3.* .mypy_cache .ruff_cache .pytest_cache
