"""``check`` on a simulator whose gateway uploads some intervals late: exit 5, spans named.

The CLI fixtures of tests/support/cli.py, with ``simulator`` overridden.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from enphase_battery.cli.live import EXIT_HOLES
from enphase_battery.simulator import EnphaseSimulator
from tests.support.cli import Run, SimulatorThread


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    thread = SimulatorThread(
        seed=3,
        systems=1,
        encharges=1,
        plan="partner",
        history=timedelta(days=2),
        late_probability=0.08,
        late_delay=timedelta(days=3),
    )
    yield thread
    thread.close()


def test_check_names_the_late_intervals_and_exits_5(
    cli: Run, env: dict[str, str], sim: EnphaseSimulator, system_id: int
) -> None:
    serial = sim.encharge_serials(system_id)[0]
    device = sim.system(system_id).encharge(serial)
    assert device is not None
    now = sim.clock.timestamp()
    start = now - 86_400
    late = [
        iv.end_at
        for iv in sim.ground_truth_encharge(system_id, serial, start, now - 3600)
        if sim.arrival.visible_at(device, device.index(iv.end_at)) > now
    ]
    assert late, "the seed must hold some intervals back"
    code, out, err = cli(
        "check", "--system", str(system_id), "--since", "2026-05-31", "--step", "6h"
    )
    assert code == EXIT_HOLES, err
    assert "span(s) do not add up" in out
    for end_at in late:
        stamp = datetime.fromtimestamp(end_at, UTC).strftime("%Y-%m-%d %H:%MZ")
        assert f"missing: {serial} interval ending {stamp}" in out
