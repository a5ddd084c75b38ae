# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck pytest docs demo bench clean test-ha test-pins test-min

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
	$(BIN)/mypy --strict enphase_battery scripts/docs_hooks.py scripts/dep-bounds.py

# The suite runs with orjson (installed by the dev extra); the suites that decode API
# bodies run again on the standard library, the path of an install without [speed].
STDLIB_JSON_TESTS := tests/test_json_decoder.py tests/test_client.py \
	tests/test_sdk_on_simulator.py tests/test_live_stream.py tests/test_sse.py \
	tests/client/test_commissioning.py

# A throwaway PostgreSQL server (or the user's ENPHASE_TEST_POSTGRES_DSN), and the InfluxDB
# and Prometheus binaries the tests start throwaway servers of (scripts/with-servers.sh).
pytest: $(STAMP)
	scripts/with-servers.sh $(BIN)/pytest
	ENPHASE_BATTERY_JSON=stdlib $(BIN)/pytest -q $(STDLIB_JSON_TESTS)

# The documentation site (mkdocs.yml, docs/), built offline; --strict fails on any warning:
# a broken link, a page missing from the nav, an API name mkdocstrings cannot find.
# NO_MKDOCS_2_WARNING silences Material's banner about MkDocs 2.0, which says nothing of ours.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test: lint typecheck docs pytest test-ha test-pins test-min

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

# The SDK's own suite on the versions of its dependencies it claims, beside the newest ones of
# `make pytest`: under Home Assistant's pins (test-pins: the Python, the package_constraints.txt
# and hence aiohttp, attrs, cattrs... of .venv-ha's Home Assistant) and on the declared minimums
# (test-min: pyproject.toml's lower bounds, the extras' included, on the project's Python floor).
# Each venv has the SDK and its [test] extra only: .venv-ha's pytest plugins (pytest-socket,
# Home Assistant's fixtures, an older pytest-asyncio) are not the SDK suite's.
# What runs: the suites that touch the dependencies' surface (docs/development.md says why
# these): HTTP through aiohttp and the models through attrs/cattrs (client, writes, faults,
# auth, JSON, models, settings), the simulator (aiohttp's server), live streams (SSE), retries
# (backoff), limits (aiolimiter), the poller basics, the sinks and `serve` (prometheus-client),
# the CLI and environment settings; on the minimums also PostgreSQL (asyncpg). Both runs have
# the PostgreSQL server: a few of these tests use it (and under CI=true must not skip).
DEPS_TESTS := tests/test_client.py tests/test_writes.py tests/test_faults.py \
	tests/test_request_observers.py \
	tests/test_lenient_answers.py tests/test_auth.py tests/test_token_endpoint.py \
	tests/test_token_race.py \
	tests/test_json_decoder.py tests/test_models.py tests/test_models_live.py \
	tests/test_settings_validation.py tests/test_config_structure.py tests/test_retry_policy.py \
	tests/test_limits.py tests/test_simulator.py tests/test_simulator_bodies.py \
	tests/test_sdk_on_simulator.py tests/test_sse.py tests/test_live_stream.py \
	tests/test_live_simulator.py tests/test_live_resilience.py tests/test_poller.py \
	tests/test_poller_engine.py tests/test_checkpoint.py tests/test_environment.py \
	tests/test_cli.py tests/client tests/simulator tests/cli/test_battery_mode.py \
	tests/sinks tests/cli/test_serve.py \
	--deselect tests/test_poller.py::test_transient_failures_mid_stream_are_retried_inside \
	--deselect tests/test_poller.py::test_transient_failure_of_device_discovery_is_retried
# (Those two wait out the simulator's real one-minute rate window, 70 and 45 s, for the
# governor's sake, not a dependency's; the rest of the subset takes under a minute.)
# Not the test that restarts the server: on parallel workers it would cut the others off.
DEPS_PG_TESTS := tests/test_postgres_checkpoint.py tests/test_postgres_governor.py \
	--deselect tests/test_postgres_checkpoint.py::test_server_restart_is_waited_out
DEPS_WORKERS ?= 4
DEPS_PYTEST = -q -p no:cacheprovider -n $(DEPS_WORKERS) --dist worksteal
DEPS_EXTRAS := postgres speed exporter

# Compiled bytecode is kept even where the environment says not to (PYTHONDONTWRITEBYTECODE=1):
# otherwise every worker and every CLI process the tests start compiles the package again.
test-pins test-min: export PYTHONDONTWRITEBYTECODE =

VENV_PINS := .venv-pins
PINS_STAMP := $(VENV_PINS)/.installed

# Home Assistant's constraints file, read from the Home Assistant installed in .venv-ha.
$(PINS_STAMP): $(HA_STAMP) pyproject.toml
	$(HA_PYTHON) -m venv --clear $(VENV_PINS)
	$(VENV_PINS)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_PINS)/bin/python -m pip install --quiet -e ".[test]" \
		-c "$$($(VENV_HA)/bin/python -c 'import homeassistant, pathlib; print(pathlib.Path(homeassistant.__file__).parent / "package_constraints.txt")')"
	touch $(PINS_STAMP)

test-pins: $(PINS_STAMP)
	@$(VENV_PINS)/bin/python scripts/dep-bounds.py installed $(DEPS_EXTRAS)
	scripts/with-postgres.sh $(VENV_PINS)/bin/pytest $(DEPS_PYTEST) $(DEPS_TESTS)

MIN_PYTHON_VERSION := $(shell sed -n 's/^requires-python = ">=\([0-9.]*\)"$$/\1/p' pyproject.toml)
MIN_PYTHON ?= $(shell scripts/find-python.sh $(MIN_PYTHON_VERSION) MIN_PYTHON)
VENV_MIN := .venv-min
MIN_STAMP := $(VENV_MIN)/.installed

$(MIN_STAMP): pyproject.toml scripts/dep-bounds.py
	@test -n "$(MIN_PYTHON)" || { echo "make test-min: no Python $(MIN_PYTHON_VERSION) (see above; or MIN_PYTHON=...)" >&2; exit 1; }
	$(MIN_PYTHON) -m venv --clear $(VENV_MIN)
	$(VENV_MIN)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_MIN)/bin/python scripts/dep-bounds.py min $(DEPS_EXTRAS) > $(VENV_MIN)/constraints-min.txt
	$(VENV_MIN)/bin/python -m pip install --quiet -e ".[test]" -c $(VENV_MIN)/constraints-min.txt
	touch $(MIN_STAMP)

test-min: $(MIN_STAMP)
	@$(VENV_MIN)/bin/python scripts/dep-bounds.py installed $(DEPS_EXTRAS)
	scripts/with-postgres.sh $(VENV_MIN)/bin/pytest $(DEPS_PYTEST) $(DEPS_TESTS) $(DEPS_PG_TESTS)

demo: $(STAMP)
	$(BIN)/python -m enphase_battery.cli.demo

# Every benchmarks/bench_*.py, then one table (figure, SDK, baseline, ratio, goal, met).
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(VENV_HA) $(VENV_PINS) $(VENV_MIN) .mypy_cache .pytest_cache .ruff_cache site
