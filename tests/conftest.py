"""The fixtures every test may use, registered from their modules under tests/support/:
the fake v4 API and clients of it (``clients``), the CLI against the simulator (``cli``),
PostgreSQL (``postgres``) and the throwaway InfluxDB and Prometheus servers (``servers``). A
directory's own conftest.py holds what only its tests use.

Under pytest-xdist the tests marked ``slow`` start first: with ``--dist worksteal`` each
worker begins with a contiguous share of the collection, so each share begins with its part
of the slow tests (instead of the last of them starting when the others are nearly done)."""

from __future__ import annotations

import os

import pytest

pytest_plugins = [
    "tests.support.clients",
    "tests.support.cli",
    "tests.support.postgres",
    "tests.support.servers",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    slow = [item for item in items if item.get_closest_marker("slow")]
    if workers < 2 or not slow:
        return
    rest = [item for item in items if not item.get_closest_marker("slow")]
    # The shares worksteal hands out first: len(pending) // workers left, in turn.
    ordered: list[pytest.Item] = []
    left = len(items)
    for worker in range(workers):
        size = left // (workers - worker)
        left -= size
        mine = slow[worker::workers]
        ordered += mine
        ordered += rest[: size - len(mine)]
        del rest[: size - len(mine)]
    items[:] = ordered + rest
