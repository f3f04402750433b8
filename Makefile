# Two commands on a fresh machine (Python 3.11+, make; no PostgreSQL needed):
#   make demo   the embedded PostgreSQL, every migration, what was done
#   make test   ruff, mypy, venuedb lint (sqlfluff, PL/pgSQL, squawk) and the whole pytest suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint format bench clean

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
test: lint
	$(BIN)/pytest -n 2

# Every benchmark of bench/ on an embedded server of its own; SCALE=0.1 for a quick run.
bench: $(STAMP)
	$(BIN)/python -m bench --scale $(or $(SCALE),1.0)

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/sqlfluff fix sql/

clean:
	-$(BIN)/venuedb db stop
	-$(BIN)/python -c "from bench.common import stop_bench_server; stop_bench_server()"
	rm -rf $(VENV) .venuedb
