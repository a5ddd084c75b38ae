"""``QuotaGovernor.background_rate()``: the pace background work may spend at, the same
line the governor's background admissions follow."""

from __future__ import annotations

import pytest

from enphase_battery import RateLimits
from enphase_battery.quota.governor import QuotaGovernor
from enphase_battery.quota.state import calendar_month
from tests.support.quota import JUNE, FakeClock

MONTH_END = calendar_month(JUNE)[1]  # June: 30 days


def test_a_fresh_month_spreads_the_whole_share_over_the_month() -> None:
    governor = QuotaGovernor(RateLimits.KILOWATT, clock=FakeClock(), quota_share=0.8)
    # 80 % of 50,000 requests over June's 30 days.
    assert governor.background_rate() == pytest.approx(40_000 / (30 * 86_400))
    # Half way through the month, nothing spent: the whole share over the half left.
    assert governor.background_rate(JUNE + 15 * 86_400) == pytest.approx(40_000 / (15 * 86_400))


async def test_the_part_spent_is_taken_off_and_admissions_follow_the_same_line() -> None:
    clock = FakeClock()
    # No burst: each background admission waits for one token of the budget line.
    governor = QuotaGovernor(RateLimits.WATT, clock=clock, quota_share=0.8, burst_s=0)
    await governor.admit(background=True)
    rate = governor.background_rate()
    assert rate == pytest.approx((800 - 1) / (MONTH_END - JUNE))
    assert rate == governor.background_rate(JUNE)
    await governor.admit(background=False)  # the user's own call: not background's spending
    assert clock.time() > JUNE
    paced = governor.background_rate()
    assert paced == pytest.approx((800 - 1) / (MONTH_END - clock.time()))

    await governor.admit(background=True)

    # The next background request waited for one request's worth of budget at that rate
    # since the first one took the last token.
    assert clock.time() - JUNE == pytest.approx(1 / paced, rel=1e-9)
    assert governor.background_rate() == pytest.approx((800 - 2) / (MONTH_END - clock.time()))


async def test_a_spent_share_leaves_no_pace() -> None:
    clock = FakeClock()
    # A burst as long as the month: the whole share may go at once.
    limits = RateLimits(600, 60.0, 10)
    governor = QuotaGovernor(limits, clock=clock, quota_share=0.5, burst_s=31 * 86_400)
    for _ in range(5):  # half of 10: the whole background share
        await governor.admit(background=True)
    assert clock.time() < JUNE + 60
    assert governor.background_rate() == 0.0
    # The user's own calls may still spend the rest of the month's quota.
    await governor.admit(background=False)
    assert governor.background_rate() == 0.0
    assert (await governor.usage()).remaining == 4


def test_a_plan_without_a_monthly_quota_paces_at_its_own_rate() -> None:
    governor = QuotaGovernor(RateLimits(30, 60.0, None), clock=FakeClock())
    assert governor.background_budget is None
    assert governor.background_rate() == 0.5
    assert governor.background_rate(JUNE + 86_400) == 0.5
