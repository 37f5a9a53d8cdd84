# Every target installs what it needs into .venv from pinned requirements; nothing else is assumed.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov lives in its own venv: its pinned dependencies (boto3, networkx, ...) differ from ours.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

# PYTHON if given, else the first of python3.12 (the Lambda runtime), python3.13, python3.11, python3
# that is >= 3.11. Each venv is remade when it was made by another Python (base prefix + version).
PY_OK := import sys; sys.exit(sys.version_info < (3, 11))
PY_ID := import sys; print(sys.base_prefix, "%d.%d.%d" % sys.version_info[:3])
ifeq ($(strip $(PYTHON)),)
override PYTHON := $(shell for c in python3.12 python3.13 python3.11 python3; do \
	  if "$$c" -c '$(PY_OK)' >/dev/null 2>&1; then echo "$$c"; break; fi; done)
endif
WANT_ID := $(if $(PYTHON),$(shell $(PYTHON) -c '$(PY_ID)' 2>/dev/null))
# $(call stale,DIR): FORCE when the venv DIR is missing or was made by another Python.
stale = $(call differ,$(WANT_ID),$(shell $(1)/bin/python -c '$(PY_ID)' 2>/dev/null))
differ = $(if $(filter-out $(1),$(2))$(filter-out $(2),$(1)),FORCE)
# $(call venv,DIR): DIR becomes a fresh venv of $(PYTHON) unless it already is one.
define venv
	@test -n "$(PYTHON)" && $(PYTHON) -c '$(PY_OK)' || { echo "need Python >= 3.11: python3.12, python3.13, python3.11 or python3 on PATH, or PYTHON=..."; exit 1; }
	@test "$$($(1)/bin/python -c '$(PY_ID)' 2>/dev/null)" = "$(WANT_ID)" || $(PYTHON) -m venv --clear $(1)
	@echo "$(1): $$($(1)/bin/python --version) ($(PYTHON))"
endef

.PHONY: install test lint lint-code browser unit integration workflow e2e template fuzz run demo bench \
	api-key api-keys revoke-key clean FORCE

install: $(STAMP)

# Two packages of this repo are installed editable with it: the layer's (layers/common, the
# `imagegateway` package and the `imagegateway-keys` tool) and the client (client/, the
# `imagegateway` CLI), both in .venv/bin.
$(STAMP): requirements-dev.txt layers/common/requirements.txt layers/common/pyproject.toml \
		client/pyproject.toml $(call stale,$(VENV))
	$(call venv,$(VENV))
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt \
		-e ./layers/common -e ./client
	@touch $@

$(CHECKOV_STAMP): requirements-checkov.txt $(call stale,$(CHECKOV_VENV))
	$(call venv,$(CHECKOV_VENV))
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@touch $@

# checkov: offline (--skip-download), fails on any finding; skips are justified in .checkov.yaml.
# The code's checks; `lint` adds the template's (cfn-lint, checkov), which `make test` runs as
# tests (tests/template/test_lint.py: the SAM template and the translated one).
lint-code: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

lint: lint-code $(CHECKOV_STAMP)
	$(BIN)/cfn-lint template.yaml
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --skip-download \
	  --quiet --compact --config-file .checkov.yaml

# The two venvs and the browser are installed side by side; then the tests that build their own
# moto and fake upstream on four workers, stealing work (many wait on the clock: executions,
# deadlines, a receiver that never answers), and beside them the code's checks (their output
# follows the tests', and either failing fails the run); then the e2e tests on four
# workers, each with a local stack of its own (a 45 s upstream POST, deadlines, a burst), and
# beside them, alone in its process, the schemathesis fuzz (it generates far fewer cases under
# xdist; its output follows the e2e's). A fresh clone's first green run: README, first screen.
test:
	@$(MAKE) --no-print-directory -j3 $(STAMP) $(CHECKOV_STAMP) browser
	@mkdir -p out
	@( $(MAKE) --no-print-directory lint-code > out/lint.log 2>&1; echo $$? > out/lint.rc ) & \
	$(BIN)/pytest -n 4 --dist worksteal --ignore=tests/e2e \
		--ignore=tests/integration/test_openapi_fuzz.py; tests=$$?; wait; \
	echo "--- the code's checks (make lint-code), run beside those tests:"; \
	cat out/lint.log; test $$tests -eq 0 && test "$$(cat out/lint.rc)" = 0
	@( $(BIN)/pytest tests/integration/test_openapi_fuzz.py > out/fuzz.log 2>&1; \
	   echo $$? > out/fuzz.rc ) & \
	$(BIN)/pytest -n 4 --dist loadfile tests/e2e; e2e=$$?; wait; \
	echo "--- the fuzz (tests/integration/test_openapi_fuzz.py), run beside the e2e tests:"; \
	cat out/fuzz.log; test $$e2e -eq 0 && test "$$(cat out/fuzz.rc)" = 0

unit integration workflow e2e template: $(STAMP)
	$(BIN)/pytest tests/$@

e2e: browser

# The console's browser test (tests/e2e/test_console_browser.py) drives Debian's Chromium through
# Debian's chromedriver: one version from the distribution, so nothing downloads at run time.
# Installed when missing (root, or sudo); a quick check when present.
APT_GET := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "installing Debian's chromium and chromium-driver (the console's browser test)"; \
	  $(APT_GET) update -qq && \
	  $(APT_GET) install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }

# The long schemathesis run (make test's is short): every route, positive and negative cases plus
# hostile values (huge numbers, lone surrogates, deep nesting, edited cursors), at least 5,000
# requests; it prints the requests sent and the 5xx seen (which must be none).
fuzz: $(STAMP)
	FUZZ_CASES_PER_OPERATION=800 FUZZ_MIN_CASES=5000 $(BIN)/pytest \
		tests/integration/test_openapi_fuzz.py

run: $(STAMP)
	$(BIN)/python -m local.stack

demo: $(STAMP)
	$(BIN)/python -m local.demo

bench: $(STAMP)
	$(BIN)/python -m tests.bench

# An API key for the keyed API, printed once: `make api-key NAME=team-a` (needs `make run`, or
# TABLE=<the stack's ApiKeysTableName> with AWS credentials for a deployed stack). The command is
# the package's `imagegateway-keys` (layers/common/pyproject.toml), installed by make install.
api-key: $(STAMP)
	@test -n "$(NAME)" || { echo "usage: make api-key NAME=<owner> [TABLE=<ApiKeysTableName>]"; exit 2; }
	@$(BIN)/imagegateway-keys issue "$(NAME)" $(if $(TABLE),--table "$(TABLE)")

# An owner's keys, by the fingerprint printed at issue (never the key): `make api-keys NAME=team-a`.
api-keys: $(STAMP)
	@test -n "$(NAME)" || { echo "usage: make api-keys NAME=<owner> [TABLE=<ApiKeysTableName>]"; exit 2; }
	@$(BIN)/imagegateway-keys list "$(NAME)" $(if $(TABLE),--table "$(TABLE)")

# Revoke without the key: one key by its fingerprint (`make revoke-key FINGERPRINT=1a2b3c4d`, with
# NAME=<owner> too if two owners' keys share it), or every key of an owner (`make revoke-key
# NAME=team-a`). A key in hand: `imagegateway-keys revoke <key>`.
revoke-key: $(STAMP)
	@test -n "$(FINGERPRINT)$(NAME)" || { echo "usage: make revoke-key FINGERPRINT=<fp> [NAME=<owner>] | NAME=<owner> [TABLE=<ApiKeysTableName>]"; exit 2; }
	@$(BIN)/imagegateway-keys revoke $(if $(FINGERPRINT),--fingerprint "$(FINGERPRINT)") \
		$(if $(NAME),--owner "$(NAME)") $(if $(TABLE),--table "$(TABLE)")

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .aws-sam out
