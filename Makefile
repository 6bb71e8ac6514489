# esl-callback: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SYSTEM_PACKAGES := postgresql chromium

.PHONY: install system-packages test lint demo bench clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@$(MAKE) --no-print-directory system-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,desktop,test-desktop]'
	touch $(STAMP)

# System packages the tests need (PostgreSQL server binaries, Debian's chromium for browser tests).
system-packages:
	@missing=""; \
	for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "Installing system packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing; \
	else \
		echo "Missing system packages:$$missing"; \
		echo "Run: sudo apt-get install -y$$missing"; \
		exit 1; \
	fi

lint: install
	$(BIN)/ruff check esl_callback tests scripts scripts/bench scripts/callback-storm bench
	$(BIN)/ruff format --check esl_callback tests scripts scripts/bench scripts/callback-storm bench

test: install lint
	$(BIN)/pytest -q

demo: install
	$(BIN)/esl-callback demo

bench: install
	$(BIN)/python scripts/bench

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
