"""Fixtures of the CLI's sink tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.support.cli import SimulatorThread


@pytest.fixture
def late_simulator() -> Iterator[SimulatorThread]:
    """Two systems of two Encharges; a tenth of the Encharges' intervals 2 h late, so
    battery intervals go out partial and come again revised."""
    thread = SimulatorThread(
        seed=11, systems=2, encharges=2, plan="partner", history=timedelta(days=2),
        late_probability=0.1, late_delay=timedelta(hours=2),
    )  # fmt: skip
    yield thread
    thread.close()
