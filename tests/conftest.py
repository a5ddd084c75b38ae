"""The fixtures every test may use, registered from their modules under tests/support/:
the fake v4 API and clients of it (``clients``), the CLI against the simulator (``cli``),
PostgreSQL (``postgres``) and the throwaway InfluxDB and Prometheus servers (``servers``). A
directory's own conftest.py holds what only its tests use."""

pytest_plugins = [
    "tests.support.clients",
    "tests.support.cli",
    "tests.support.postgres",
    "tests.servers",
]
