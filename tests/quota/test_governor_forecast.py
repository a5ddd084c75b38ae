"""The month's forecast follows the budget line (issue 18 item 8): background work's pace is
measured from when it began this month, and never forecast beyond its budget.

On a fake clock (time moves when someone sleeps): no wall-clock measurement.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from enphase_battery import QuotaGovernor, RateLimits

#: The 5th, noon: four and a half days of the month already gone.
FIFTH = datetime(2026, 6, 5, 12, tzinfo=UTC).timestamp()
JULY = datetime(2026, 7, 1, tzinfo=UTC).timestamp()


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.now += seconds
        await asyncio.sleep(0)


async def admit_background(governor: QuotaGovernor, count: int) -> None:
    for _ in range(count):
        await governor.admit(background=True)


async def test_a_fleet_started_on_the_fifth_is_forecast_at_its_own_pace() -> None:
    clock = FakeClock(FIFTH)
    limits = RateLimits(6000, 60.0, 3_000_000)  # a budget far above this fleet's pace
    governor = QuotaGovernor(limits, clock=clock, quota_share=0.8)
    await admit_background(governor, 600)
    clock.now += 600.0  # ...in about ten minutes of running
    ran_s = clock.now - FIFTH
    usage = await governor.usage()
    pace_forecast = 600 + 600 / ran_s * (JULY - clock.now)
    assert usage.forecast == pytest.approx(pace_forecast, rel=0.01)


async def test_a_fleet_that_wants_more_than_its_budget_is_forecast_at_the_budget() -> None:
    clock = FakeClock(FIFTH)
    limits = RateLimits.PARTNER  # 1,500,000 a month: a background budget of 1,200,000
    governor = QuotaGovernor(limits, clock=clock, quota_share=0.8)
    await admit_background(governor, 2000)  # the start-up burst, at the plan's rate
    usage = await governor.usage()
    budget = governor.background_budget
    assert budget == 1_200_000
    # The budget line holds it there: what the fleet will have spent by the month's end.
    assert usage.forecast == budget
