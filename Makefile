# The two commands: `make demo` and `make test`. Each creates the virtualenv and installs what it
# needs when missing, so either works on its own on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0
# Optional dependency groups from pyproject.toml that the demo and the tests need.
EXTRAS ?= dev,grpc,scale

.PHONY: demo test lint install serve clean services

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	# torch first and pinned: the CPU wheel on local disk; an unpinned torch pulls a multi-GB CUDA build
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[$(EXTRAS)]'
	@touch $(STAMP)

install: $(STAMP)

## demo: venv + install, train and register iris and digits, start the server on 127.0.0.1:8000
demo: $(STAMP)
	$(BIN)/modelhost demo --serve

## services: the PostgreSQL server binaries the registry tests start a throwaway cluster with (Debian
## package `postgresql`); where it cannot be installed, those tests are skipped with the reason.
services:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } || \
	  echo "postgresql could not be installed: the PostgreSQL tests will be skipped"

## test: lint (ruff), types (mypy) and the test suite (pytest, including the e2e tier)
test: $(STAMP) services
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

serve: $(STAMP)
	$(BIN)/modelhost serve

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
