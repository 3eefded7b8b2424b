# lead-caller: `make run` (the whole stack locally) and `make test` (every check).
# Everything is installed from this repository's files into .venv/ and .tools/.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# pyenv machines keep several interpreters; this makes the python3.13 shim usable.
export PYENV_VERSION ?= 3.11.7:3.12.1:3.13.0
export SAM_CLI_TELEMETRY := 0
export AWS_EC2_METADATA_DISABLED := true

RUNTIME := python3.13
# The functions' runtime interpreter if this machine has it, else the default python3.
PYTHON := $(shell PYENV_VERSION=$(PYENV_VERSION) $(RUNTIME) -c 'import sys; print(sys.executable)' 2>/dev/null || python3 -c 'import sys; print(sys.executable)')
HAVE_RUNTIME := $(shell PYENV_VERSION=$(PYENV_VERSION) $(RUNTIME) -c 'print(1)' 2>/dev/null)
BOOT := .tools/bootstrap
UV := $(BOOT)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
SAM := .tools/sam/bin/sam
SAM_VERSION := 1.170.0
UV_VERSION := 0.13.9
ARGS ?=

.PHONY: help venv tools lambda-runtime lint format typecheck unit integration pytest sam-validate sam-build test run bench faults clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

$(UV):
	python3 -m venv $(BOOT)
	$(BOOT)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: requirements-dev.txt src/requirements.txt $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip install --quiet --python $(PY) -r requirements-dev.txt
	@touch $@

$(SAM): $(UV)
	$(UV) venv --quiet --allow-existing --python python3 .tools/sam
	$(UV) pip install --quiet --python .tools/sam/bin/python aws-sam-cli==$(SAM_VERSION)

LAMBDA_RUNTIME := .tools/lambda-runtime
$(LAMBDA_RUNTIME)/.installed: requirements-lambda-runtime.txt $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(LAMBDA_RUNTIME)
	$(UV) pip install --quiet --compile-bytecode --python $(LAMBDA_RUNTIME)/bin/python -r requirements-lambda-runtime.txt
	@touch $@

venv: $(VENV)/.installed ## the project environment (.venv, on the runtime's Python where available)

tools: $(SAM) ## the SAM CLI in its own environment (.tools/sam)

lint: venv ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: venv ## mypy --strict
	$(VENV)/bin/mypy

sam-validate: tools ## sam validate --lint
	$(SAM) validate --lint --region us-east-1

sam-build: tools ## sam build (needs the runtime's interpreter on PATH)
	@if [ -n "$(HAVE_RUNTIME)" ]; then \
		$(SAM) build --region us-east-1; \
	else \
		echo "SKIPPED sam build: $(RUNTIME) is not on PATH (the artifact test will be skipped too)"; \
	fi

lambda-runtime: $(LAMBDA_RUNTIME)/.installed ## what the Lambda runtime provides (for the artifact test)

pytest: venv lambda-runtime ## unit, integration and artifact tests
	$(PY) -m pytest

test: lint typecheck sam-validate sam-build pytest ## every check (what CI runs)

run: venv ## the whole stack locally: embedded AWS, Unpod sandbox, API on 127.0.0.1:3000
	$(PY) -m local.stack $(ARGS)

faults: venv ## the fault matrix, full profile: a table of figures with targets (faults-report.json)
	FAULTS_PROFILE=full $(PY) -m pytest tests/faults -q

bench: venv sam-build ## measure intake/dispatch throughput and cold starts
	$(PY) -m bench.run $(ARGS)

clean: ## remove environments and build output
	rm -rf $(VENV) .tools .aws-sam .mypy_cache .ruff_cache .pytest_cache
