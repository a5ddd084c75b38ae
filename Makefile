# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck pytest demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check enphase_battery tests benchmarks
	$(BIN)/ruff format --check enphase_battery tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict enphase_battery

# A throwaway PostgreSQL server for the tests (or the user's ENPHASE_TEST_POSTGRES_DSN).
pytest: $(STAMP)
	scripts/with-postgres.sh $(BIN)/pytest

test: lint typecheck pytest

demo: $(STAMP)
	$(BIN)/python -m enphase_battery.demo

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_client.py
	$(BIN)/python benchmarks/bench_poller.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
