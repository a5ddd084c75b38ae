# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck pytest docs demo bench clean test-ha

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check enphase_battery tests benchmarks scripts custom_components tests_ha
	$(BIN)/ruff format --check enphase_battery tests benchmarks scripts custom_components tests_ha

typecheck: $(STAMP)
	$(BIN)/mypy --strict enphase_battery scripts/docs_hooks.py

# The suite runs with orjson (installed by the dev extra); the suites that decode API
# bodies run again on the standard library, the path of an install without [speed].
STDLIB_JSON_TESTS := tests/util/test_json_decoder.py tests/client/test_client.py \
	tests/client/test_on_simulator.py tests/live/test_session.py tests/http/test_sse.py \
	tests/client/test_commissioning.py

# The suite runs on pytest-xdist workers, each with a PostgreSQL database of its own
# (tests/support/postgres.py), its own temporary directories and loopback ports. Most tests wait
# on loopback I/O, subprocesses and the simulator's clock rather than on the CPU, so more
# workers than cores pays: 6 measured best on the 2-core machine (`make pytest
# PYTEST_WORKERS=0` runs serially). worksteal: a worker that runs out takes tests queued on
# another, so a few long tests don't leave the others idle at the end.
PYTEST_WORKERS ?= 6
XDIST := -n $(PYTEST_WORKERS) --dist worksteal
# Line coverage of enphase_battery, combined across the workers; it must not fall (91.2 % with
# the sinks: the CLI processes the tests start are not measured).
COVERAGE := --cov=enphase_battery --cov-report=term:skip-covered --cov-fail-under=91

# Compiled bytecode is kept (__pycache__, ignored by git) even where the environment says
# not to (PYTHONDONTWRITEBYTECODE=1, as on the development machine): otherwise every worker
# and every CLI process the tests start compiles the package again (a quarter of the run's
# CPU time on 2 cores).
pytest: export PYTHONDONTWRITEBYTECODE =

# A throwaway PostgreSQL server (or the user's ENPHASE_TEST_POSTGRES_DSN), and the InfluxDB
# and Prometheus binaries the tests start throwaway servers of (scripts/with-servers.sh).
pytest: $(STAMP)
	scripts/with-servers.sh $(BIN)/pytest $(XDIST) $(COVERAGE)
	ENPHASE_BATTERY_JSON=stdlib $(BIN)/pytest -q $(XDIST) $(STDLIB_JSON_TESTS)

# The documentation site (mkdocs.yml, docs/), built offline; --strict fails on any warning:
# a broken link, a page missing from the nav, an API name mkdocstrings cannot find.
# NO_MKDOCS_2_WARNING silences Material's banner about MkDocs 2.0, which says nothing of ours.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test: lint typecheck docs pytest test-ha

# The Home Assistant integration (custom_components/enphase_battery) is tested in its own
# venv: Home Assistant needs a newer Python than the SDK's floor.  The pair is pinned in
# tests_ha/requirements.txt (the newest Home Assistant that installs on the newest Python
# of the machine's image); the SDK goes in under Home Assistant's own constraints
# (package_constraints.txt), as Home Assistant installs an integration's requirements.
HA_PYTHON_VERSION := 3.13
HA_PYTHON ?= $(shell scripts/find-python.sh $(HA_PYTHON_VERSION))
VENV_HA := .venv-ha
HA_STAMP := $(VENV_HA)/.installed

$(HA_STAMP): tests_ha/requirements.txt pyproject.toml
	@test -n "$(HA_PYTHON)" || { echo "make test-ha: no Python $(HA_PYTHON_VERSION) (see above; or HA_PYTHON=...)" >&2; exit 1; }
	$(HA_PYTHON) -m venv $(VENV_HA)
	$(VENV_HA)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_HA)/bin/python -m pip install --quiet -r tests_ha/requirements.txt
	$(VENV_HA)/bin/python -m pip install --quiet -e . \
		-c "$$($(VENV_HA)/bin/python -c 'import homeassistant, pathlib; print(pathlib.Path(homeassistant.__file__).parent / "package_constraints.txt")')"
	touch $(HA_STAMP)

test-ha: $(HA_STAMP)
	$(VENV_HA)/bin/mypy --strict --python-version 3.13 --explicit-package-bases --cache-dir $(VENV_HA)/.mypy_cache \
		custom_components/enphase_battery
	$(VENV_HA)/bin/python -m pytest -c tests_ha/pytest.ini --rootdir . -q

demo: $(STAMP)
	$(BIN)/python -m enphase_battery.cli.demo

# Every benchmarks/bench_*.py, then one table (figure, SDK, baseline, ratio, goal, met).
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(VENV_HA) .mypy_cache .pytest_cache .ruff_cache site
