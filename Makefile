# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates the virtual environment and installs what it needs.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres

.PHONY: venv test test-sqlite demo bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "vaxhub needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# The suite runs every storage and API test on SQLite and on PostgreSQL.
test: venv
	bash scripts/ensure-postgres.sh
	bash scripts/ensure-chromium.sh
	VAXHUB_TEST_POSTGRES_URL=$(PG_URL) $(BIN)/python -m pytest -n 2 -q

# SQLite only, for a machine without PostgreSQL.
test-sqlite: venv
	VAXHUB_TEST_POSTGRES_URL= $(BIN)/python -m pytest -q

demo: venv
	$(BIN)/vaxhub demo

bench: venv
	bash scripts/ensure-postgres.sh
	$(BIN)/python bench/ingest.py --postgres-url $(PG_URL)

clean:
	rm -rf $(VENV) .pytest_cache demo-data
