# The two commands: `make run` and `make test`. Everything installs into ./.venv, from the
# hashed lock files, so what CI tested is what a new machine gets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOME_DIR ?= ./pkiforge-data
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test
LOCK      := requirements.lock
TEST_LOCK := requirements-test.lock
# `make test-latest`: the newest release of every dependency that pyproject.toml admits
LATEST := .venv-latest
# uv resolves the locks (make lock / make upgrade); it lives in its own virtualenv
TOOLS  := .venv-tools
# the docs site (mkdocs.yml); Material 9 announces its end of life on every build: said once,
# in docs/dependencies.md
MKDOCS := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs
UV_COMPILE = $(TOOLS)/bin/uv pip compile pyproject.toml --quiet --generate-hashes --universal \
             --python-version 3.11 --extra postgres --extra redis

.PHONY: run test test-fast test-latest docs docs-serve lock upgrade lint typecheck pytest services clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(TSTAMP): pyproject.toml $(TEST_LOCK) | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r $(TEST_LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@ $(STAMP)

run: $(STAMP)
	$(BIN)/pkiforge --home $(HOME_DIR) run

test: $(TSTAMP)
	$(BIN)/python scripts/locks.py check
	$(BIN)/pip check
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(MKDOCS) build --strict --quiet
	bash scripts/system-tools.sh
	bash scripts/ensure-services.sh
	$(BIN)/pytest -q

# The inner loop: no lint, no slow tests.
test-fast: $(TSTAMP)
	bash scripts/system-tools.sh
	bash scripts/ensure-services.sh
	$(BIN)/pytest -q -m "not slow"

# The whole suite against the newest releases pyproject.toml admits, in a virtualenv of its
# own: an incompatible release shows here before users install it. Packages held back by an
# upper bound are listed before the tests run (pip list --outdated).
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/pip install --quiet --upgrade --upgrade-strategy eager -e '.[postgres,redis,test]'
	$(LATEST)/bin/pip freeze --exclude-editable > $(LATEST)/versions.txt
	@echo "--- held back by pyproject.toml's upper bounds:"
	@$(LATEST)/bin/pip list --outdated --not-required 2>/dev/null || true
	bash scripts/system-tools.sh
	bash scripts/ensure-services.sh
	$(LATEST)/bin/pytest -q -p no:cacheprovider

# The reference in docs/ as a site, built into site/; docs-serve rebuilds it on every edit.
docs: $(TSTAMP)
	$(MKDOCS) build --strict

docs-serve: $(TSTAMP)
	$(MKDOCS) serve

$(TOOLS)/bin/uv:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv packaging

# Re-resolve the locks after pyproject.toml changed, keeping every pin that still fits.
lock: $(TOOLS)/bin/uv
	$(UV_COMPILE) -o $(LOCK)
	$(UV_COMPILE) --extra test -c $(LOCK) -o $(TEST_LOCK)

# Move every pin to the newest release pyproject.toml admits; prints what moved for the
# CHANGELOG's "Dependencies" section.
upgrade: $(TOOLS)/bin/uv
	cp $(TEST_LOCK) $(TOOLS)/before.lock
	$(UV_COMPILE) --upgrade -o $(LOCK)
	$(UV_COMPILE) --upgrade --extra test -c $(LOCK) -o $(TEST_LOCK)
	@echo "--- moved (add to CHANGELOG.md under Unreleased / Dependencies):"
	@$(TOOLS)/bin/python scripts/locks.py diff $(TOOLS)/before.lock $(TEST_LOCK)

clean:
	rm -rf $(VENV) $(LATEST) $(TOOLS) site .mypy_cache .ruff_cache .pytest_cache
