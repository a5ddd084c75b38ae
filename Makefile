# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck pytest docs demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check enphase_battery tests benchmarks scripts
	$(BIN)/ruff format --check enphase_battery tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy --strict enphase_battery scripts/docs_hooks.py

# The suite runs with orjson (installed by the dev extra); the suites that decode API
# bodies run again on the standard library, the path of an install without [speed].
STDLIB_JSON_TESTS := tests/test_json_decoder.py tests/test_client.py \
	tests/test_sdk_on_simulator.py tests/test_live_stream.py tests/test_sse.py

# A throwaway PostgreSQL server for the tests (or the user's ENPHASE_TEST_POSTGRES_DSN).
pytest: $(STAMP)
	scripts/with-postgres.sh $(BIN)/pytest
	ENPHASE_BATTERY_JSON=stdlib $(BIN)/pytest -q $(STDLIB_JSON_TESTS)

# The documentation site (mkdocs.yml, docs/), built offline; --strict fails on any warning:
# a broken link, a page missing from the nav, an API name mkdocstrings cannot find.
# NO_MKDOCS_2_WARNING silences Material's banner about MkDocs 2.0, which says nothing of ours.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test: lint typecheck docs pytest

demo: $(STAMP)
	$(BIN)/python -m enphase_battery.cli.demo

# Every benchmarks/bench_*.py, then one table (figure, SDK, baseline, ratio, goal, met).
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache site
