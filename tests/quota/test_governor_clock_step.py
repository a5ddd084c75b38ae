"""A wall clock stepped back is not waited out (issue 18 item 4): every stored wait is
capped at now plus one spacing, in memory, in the usage file and in PostgreSQL.

On a fake clock: time moves only when someone sleeps, so what the governor waited is
what the clock moved, not a wall-clock measurement.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from enphase_battery import QuotaGovernor, RateLimits
from enphase_battery.quota.file_backend import FileGovernorBackend
from enphase_battery.quota.governor import SPACING_MARGIN
from enphase_battery.quota.state import GovernorBackend, MemoryGovernorBackend

JUNE = datetime(2026, 6, 10, tzinfo=UTC).timestamp()
WATT = RateLimits.WATT
SPACING_S = WATT.min_spacing_s * SPACING_MARGIN


class SteppableClock:
    """Moves when someone sleeps, and when the test steps it (back or forth)."""

    def __init__(self, start: float = JUNE) -> None:
        self.now = start
        self.slept = 0.0

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.now += seconds
            self.slept += seconds
        await asyncio.sleep(0)


async def stepped_back_waits(backend: GovernorBackend, step_s: float) -> float:
    """Admit twice, step the clock back ``step_s``, admit again: what that one waited."""
    clock = SteppableClock()
    governor = QuotaGovernor(WATT, clock=clock, backend=backend)
    await governor.admit()
    await governor.admit()
    clock.now -= step_s
    clock.slept = 0.0
    await governor.admit()
    # ...and the spacing holds again from there on.
    waited = clock.slept
    await governor.admit()
    assert clock.slept - waited == pytest.approx(SPACING_S)
    return waited


@pytest.mark.parametrize("step_s", [3600.0, 86_400.0])
async def test_memory_governor_does_not_wait_out_a_clock_stepped_back(step_s: float) -> None:
    waited = await stepped_back_waits(MemoryGovernorBackend(), step_s)
    assert waited <= SPACING_S


async def test_usage_file_written_by_a_clock_a_day_ahead_is_not_waited_out(
    tmp_path: Path,
) -> None:
    path = tmp_path / "usage.json"
    waited = await stepped_back_waits(FileGovernorBackend(path), 86_400.0)
    assert waited <= SPACING_S
    # A later process (a fresh governor, like the next CLI command) does not wait either.
    clock = SteppableClock(JUNE - 86_400.0 + 60.0)
    later = QuotaGovernor(WATT, clock=clock, backend=FileGovernorBackend(path))
    await later.admit()
    assert clock.slept <= SPACING_S


async def test_a_usage_file_without_a_clock_stamp_is_capped_too(tmp_path: Path) -> None:
    # Written by an older version whose clock was a day ahead: next slot a day away.
    path = tmp_path / "usage.json"
    clock = SteppableClock()
    first = QuotaGovernor(WATT, clock=clock, backend=FileGovernorBackend(path))
    await first.admit()
    data = json.loads(path.read_text())
    (key,) = data
    data[key].pop("clock_at", None)
    data[key]["next_slot_at"] = JUNE + 86_400.0
    path.write_text(json.dumps(data))
    later = QuotaGovernor(WATT, clock=clock, backend=FileGovernorBackend(path))
    await later.admit()
    assert clock.slept <= SPACING_S
    assert (await later.usage()).used == 2


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[object]:
    import asyncpg

    made = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=2)
    yield made
    await made.close()


async def test_postgres_governor_does_not_wait_out_a_clock_stepped_back(
    pool: object,
    pg_schema: str,
) -> None:
    from enphase_battery.postgres import PostgresGovernorBackend

    backend = PostgresGovernorBackend(pool, schema=pg_schema)  # type: ignore[arg-type]
    waited = await stepped_back_waits(backend, 3600.0)
    assert waited <= SPACING_S
