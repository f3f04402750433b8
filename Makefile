# Two commands on a fresh machine (Python 3.11+, make; no PostgreSQL needed):
#   make demo   the embedded PostgreSQL, every migration, what was done
#   make test   ruff, mypy, venuedb lint (sqlfluff, PL/pgSQL, squawk), the whole pytest suite,
#               then the compat tests on PostgreSQL 15 when the machine has one (test-compat)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-compat lint format bench mutation clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/venuedb demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/venuedb lint

# Two workers, each with its own embedded server (tests/conftest.py): the machine's 2 cores.
# The suite runs on the embedded PostgreSQL 18 whatever the environment names (the server
# variables are test-compat's), then test-compat's run.
test: lint
	env -u VENUEDB_TEST_DATABASE_URL -u VENUEDB_TEST_PG_BIN $(BIN)/pytest -n 2
	$(BIN)/python -m tests.compat

# The tests marked compat on PostgreSQL 15 (Supabase's): VENUEDB_TEST_DATABASE_URL, or
# VENUEDB_TEST_PG_BIN, or one found on this machine; one line says so when there is none.
test-compat: $(STAMP)
	$(BIN)/python -m tests.compat

# Every benchmark of bench/ on an embedded server of its own; SCALE=0.1 for a quick run.
bench: $(STAMP)
	$(BIN)/python -m bench --scale $(or $(SCALE),1.0)

# Schema mutation testing (mutation/, README "Schema mutation testing"): every rule weakened
# one way at a time, against `venuedb verify` and the rule tests; too slow for `make test`.
mutation: $(STAMP)
	$(BIN)/python -m mutation

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/sqlfluff fix sql/

clean:
	-$(BIN)/venuedb db stop
	-$(BIN)/python -c "from bench.common import stop_bench_server; stop_bench_server()"
	rm -rf $(VENV) .venuedb
