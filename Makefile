# imarc — `make run` and `make test` set themselves up on a fresh machine with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: setup run test lint up bench clean

$(STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
	  { echo "imarc needs Python 3.11 (e.g. apt-get install python3.11 python3.11-venv)"; exit 1; }
	@$(PYTHON) -m venv $(VENV) || \
	  { echo "could not create a virtualenv: apt-get install python3.11-venv"; exit 1; }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $@

setup: $(STAMP)

run: setup
	$(BIN)/imarc up

test: setup
	@scripts/system-packages
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy services imarc

up: setup
	$(BIN)/imarc stack $(UP_ARGS)

bench: setup
	$(BIN)/python bench/submit_bench.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
