# esl-callback: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# -qq: errors only (setuptools' build warnings are not for a newcomer).
PIP_INSTALL := $(BIN)/pip install -qq --disable-pip-version-check --root-user-action=ignore
# The package and what it needs to run (all `make demo` needs: the demo runs on SQLite).
STAMP  := $(VENV)/.installed
# The test tools and the Debian packages only the tests need.
TEST_STAMP := $(VENV)/.installed-test
# A PostgreSQL server for the throwaway test clusters, Debian's chromium for the browser tests.
TEST_PACKAGES := postgresql chromium
# Node and npm for axe-core (the accessibility checker the browser tests run in each page):
# Debian's, unless an npm is on the PATH already (NodeSource's nodejs bundles one and conflicts
# with Debian's npm package).
NODE_PACKAGES := nodejs npm
# axe-core, pinned in package.json and package-lock.json, installed by npm ci.
AXE := node_modules/axe-core/axe.min.js

.PHONY: install install-test test lint demo bench screenshots clean

install: $(STAMP)

# Debian's python3 makes a venv only with python3-venv installed: installed (as root) when
# making the venv fails.
$(STAMP): setup.cfg pyproject.toml
	@echo "Installing esl-callback into $(VENV)"
	@$(PYTHON) -m venv $(VENV) >/dev/null 2>&1 || { \
		scripts/system-packages "for Python's venv" python3-venv && \
		$(PYTHON) -m venv --clear $(VENV); }
	@$(PIP_INSTALL) --upgrade pip
	@$(PIP_INSTALL) -e .
	@touch $@

install-test: $(TEST_STAMP) $(AXE)

$(TEST_STAMP): $(STAMP)
	@scripts/system-packages "for the tests" $(TEST_PACKAGES)
	@echo "Installing the test tools into $(VENV) (pytest, Playwright, ruff, Qt for the desktop client)"
	@$(PIP_INSTALL) -e '.[test,desktop,test-desktop]'
	@touch $@

$(AXE): package.json package-lock.json
	@command -v npm >/dev/null || scripts/system-packages "for the tests" $(NODE_PACKAGES)
	@echo "Installing axe-core into node_modules (npm ci) for the browser tests' accessibility checks"
	@npm ci --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@

lint: install-test
	$(BIN)/ruff check esl_callback tests scripts scripts/bench scripts/callback-storm scripts/portal-screenshots bench
	$(BIN)/ruff format --check esl_callback tests scripts scripts/bench scripts/callback-storm scripts/portal-screenshots bench

test: install-test lint
	$(BIN)/pytest -q

demo: install
	$(BIN)/esl-callback demo

bench: install
	$(BIN)/python scripts/bench

# The README's customer-guide screenshots (docs/portal-*.png), from a real demo in chromium.
screenshots: install-test
	$(BIN)/python scripts/portal-screenshots

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts node_modules
