# Every target installs what it needs into .venv from pinned requirements; nothing else is assumed.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov lives in its own venv: its pinned dependencies (boto3, networkx, ...) differ from ours.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

# Python 3.12 (the Lambda runtime) where the machine has it, else python3 >= 3.11.
PYTHON ?= $(shell for c in "python3.12" "env PYENV_VERSION=3.12.1 python3" "python3"; do \
	  if $$c -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then echo "$$c"; break; fi; done)

.PHONY: install test lint unit integration workflow e2e template run demo bench clean

install: $(STAMP)

$(STAMP): requirements-dev.txt layers/common/requirements.txt
	@test -n "$(PYTHON)" || { echo "need python3 >= 3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(CHECKOV_STAMP): requirements-checkov.txt
	@test -n "$(PYTHON)" || { echo "need python3 >= 3.11"; exit 1; }
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@touch $@

# checkov: offline (--skip-download), fails on any finding; skips are justified in .checkov.yaml.
lint: $(STAMP) $(CHECKOV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --skip-download \
	  --quiet --compact --config-file .checkov.yaml

test: lint
	$(BIN)/pytest

unit integration workflow e2e template: $(STAMP)
	$(BIN)/pytest tests/$@

run: $(STAMP)
	$(BIN)/python -m local.stack

demo: $(STAMP)
	$(BIN)/python -m local.demo

bench: $(STAMP)
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .aws-sam out
