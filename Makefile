# Two commands from a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(STAMP)
	$(BIN)/safetybot migrate
	$(BIN)/safetybot load-org config/demo-org.toml
	$(BIN)/safetybot load-plans config/plans
	$(BIN)/safetybot load-resources config/resources.toml
	$(BIN)/safetybot load-training config/training
	$(BIN)/safetybot import-training config/demo-training.xlsx
	$(BIN)/safetybot load-inspections config/inspection
	$(BIN)/safetybot serve

# The suite runs on SQLite, then on PostgreSQL when SAFETYBOT_TEST_DATABASE_URL names a server.
# tools/test-packages first installs the Debian packages the browser tests need (as root).
test: $(STAMP)
	@tools/test-packages
	SAFETYBOT_TEST_BACKEND=sqlite $(BIN)/pytest $(PYTEST_ARGS)
	@if [ -n "$$SAFETYBOT_TEST_DATABASE_URL" ]; then \
	  echo "== the same suite on PostgreSQL"; \
	  SAFETYBOT_TEST_BACKEND=postgres $(BIN)/pytest $(PYTEST_ARGS); \
	fi

lint: $(STAMP)
	$(BIN)/ruff check bot handlers models scheduler simulator tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) data
