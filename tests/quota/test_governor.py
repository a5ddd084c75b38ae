"""The quota governor's rules on a fake clock: spacing, the month, the background share,
refunds, the server's month 429, and the file backend shared by two "processes"."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from enphase_battery import QuotaExceededError, RateLimits
from enphase_battery.quota.file_backend import FileGovernorBackend
from enphase_battery.quota.governor import SPACING_MARGIN, QuotaGovernor
from enphase_battery.quota.state import (
    MemoryGovernorBackend,
    Outcome,
    background_work,
    calendar_month,
)
from tests.support.quota import JUNE, FakeClock


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best = 0
    j = 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


async def test_slots_are_spaced_so_no_minute_window_exceeds_the_plan() -> None:
    clock = FakeClock()
    governor = QuotaGovernor(RateLimits.KILOWATT, clock=clock)
    times = []
    for _ in range(500):
        admission = await governor.admit()
        times.append(clock.time())
        assert admission.slot_at <= clock.time()
    assert max_in_window(times, 60.0) <= 50
    # ...and no slower than the plan allows.
    assert times[-1] - times[0] == pytest.approx(499 * 1.2 * SPACING_MARGIN)


@pytest.mark.parametrize("offset", [0.0, 3.0, 5.9, 5.95, 5.99])
async def test_a_send_delayed_by_the_loop_never_puts_one_more_into_a_fixed_minute(
    offset: float,
) -> None:
    # The server counts fixed minute windows.  A slot just before a window's start whose
    # send the loop delays by 100 ms must not make that window one over the plan.
    clock = FakeClock(JUNE + offset)
    governor = QuotaGovernor(RateLimits.WATT, clock=clock)
    sends: list[float] = []
    stalled = False
    for _ in range(40):
        slot_at = (await governor.admit()).slot_at
        if not stalled and slot_at % 60 >= 59.9:
            stalled = True  # one send, the last slot before a window, slips into it
            slot_at += 0.1
        sends.append(slot_at)
    per_window: dict[int, int] = {}
    for at in sends:
        per_window[int(at // 60)] = per_window.get(int(at // 60), 0) + 1
    assert max(per_window.values()) <= 10


async def test_concurrent_callers_never_overshoot_the_month() -> None:
    clock = FakeClock()
    governor = QuotaGovernor(RateLimits(1000, 60.0, 40), clock=clock)
    results = await asyncio.gather(*(governor.admit() for _ in range(70)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, QuotaExceededError)]
    assert len(refused) == 30
    usage = await governor.usage()
    assert usage.used == 40
    assert usage.remaining == 0
    assert "no request was sent" in str(refused[0])


async def test_background_work_keeps_to_its_share_and_spreads_it_over_the_month() -> None:
    clock = FakeClock()
    limits = RateLimits(10, 60.0, 1000)  # the Watt plan
    governor = QuotaGovernor(limits, clock=clock, quota_share=0.8, burst_s=86_400)
    _start, month_end = calendar_month(clock.time())
    spend_by_day: dict[int, int] = {}
    with background_work():
        while True:
            await governor.admit()
            if clock.time() >= month_end:
                break
            day = int((clock.time() - JUNE) // 86_400)
            spend_by_day[day] = spend_by_day.get(day, 0) + 1
    june = sum(spend_by_day.values())
    assert june <= 800
    assert june >= 790  # it does spend what it may
    # Evenly: no day far above the month's average, apart from the first day's burst.
    average = 800 / 30
    assert max(n for day, n in spend_by_day.items() if day > 0) <= average * 1.5
    assert spend_by_day[0] <= average * 2.5
    # The last week still gets its share (it did not run dry on day 20).
    assert sum(n for day, n in spend_by_day.items() if day >= 23) >= average * 6


async def test_user_calls_use_the_rest_while_background_work_is_at_its_share() -> None:
    clock = FakeClock()
    governor = QuotaGovernor(
        RateLimits(1000, 60.0, 100), clock=clock, quota_share=0.5, burst_s=40 * 86_400
    )
    with background_work():
        for _ in range(50):
            await governor.admit()
    # Background work is at its share; the user's own calls still go through, up to
    # the quota.
    for _ in range(50):
        await governor.admit()
    with pytest.raises(QuotaExceededError):
        await governor.admit()
    # Background work waits for next month instead of failing.
    before = clock.time()
    with background_work():
        await governor.admit()
    assert before < calendar_month(before)[1] <= clock.time()
    usage = await governor.usage()
    assert usage.month_start == datetime(2026, 7, 1, tzinfo=UTC)
    assert usage.used == 1


async def test_a_request_that_never_reached_the_server_is_refunded_and_frees_its_slot() -> None:
    clock = FakeClock()
    governor = QuotaGovernor(RateLimits.WATT, clock=clock)
    first = await governor.admit()
    await governor.settle(first, Outcome.NOT_SENT)
    before = clock.time()
    second = await governor.admit()
    assert clock.time() == before  # no plan spacing waited for the refused one
    assert second.slot_at == first.slot_at
    assert (await governor.usage()).used == 1


async def test_a_minute_429_is_refunded_and_pushes_the_next_slot() -> None:
    clock = FakeClock()
    governor = QuotaGovernor(RateLimits.WATT, clock=clock)
    admission = await governor.admit()
    await governor.settle(admission, Outcome.MINUTE_LIMIT, retry_after_s=45.0)
    before = clock.time()
    await governor.admit()
    assert clock.time() - before == pytest.approx(45.0)
    assert (await governor.usage()).used == 1


async def test_cancelled_while_waiting_for_a_slot_is_refunded() -> None:
    clock = FakeClock()
    governor = QuotaGovernor(RateLimits.WATT, clock=clock)

    class Stuck(FakeClock):
        async def sleep(self, seconds: float) -> None:
            await asyncio.Event().wait()

    await governor.admit()
    governor.clock = Stuck(clock.time())
    task = asyncio.ensure_future(governor.admit())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await governor.usage()).used == 1


async def test_month_429_holds_for_that_plan_and_that_month_only(tmp_path: Path) -> None:
    clock = FakeClock()
    backend = FileGovernorBackend(tmp_path / "usage.json")
    watt = QuotaGovernor(
        RateLimits.WATT,
        clock=clock,
        backend=backend,
        key="k",
        reset_hint="run `enphase-battery usage --reset` to clear it",
    )
    await watt.admit()
    june_start, june_end = calendar_month(clock.time())
    await watt.month_spent(period_start=june_start, period_end=june_end, limit=1000)
    with pytest.raises(QuotaExceededError) as caught:
        await watt.admit()
    message = str(caught.value)
    assert str(tmp_path / "usage.json") in message
    assert "enphase-battery usage --reset" in message
    # Another plan on the same key and the same file is not locked out.
    kilowatt = QuotaGovernor(RateLimits.KILOWATT, clock=clock, backend=backend, key="k")
    await kilowatt.admit()
    assert (await kilowatt.usage()).used == 1
    # Next month, the Watt plan counts afresh.
    clock.now = june_end + 1
    await watt.admit()
    assert (await watt.usage()).used == 1


async def test_a_nonsense_month_period_is_bounded_to_the_month() -> None:
    clock = FakeClock()
    governor = QuotaGovernor(RateLimits.WATT, clock=clock)
    await governor.month_spent(
        period_start=clock.time() - 10, period_end=clock.time() + 10 * 365 * 86_400, limit=1
    )
    usage = await governor.usage()
    assert usage.exhausted_until == datetime(2026, 7, 1, tzinfo=UTC)


async def test_the_apis_month_is_followed_where_a_429_names_it() -> None:
    clock = FakeClock(JUNE + 3 * 86_400)
    governor = QuotaGovernor(RateLimits.WATT, clock=clock)
    api_start, api_end = JUNE + 2 * 86_400, JUNE + 32 * 86_400
    await governor.month_spent(period_start=api_start, period_end=api_end, limit=1000)
    usage = await governor.usage()
    assert usage.month_start.timestamp() == api_start
    assert usage.month_end.timestamp() == api_end
    clock.now = api_end + 60
    await governor.admit()
    usage = await governor.usage()
    assert usage.month_start.timestamp() == api_end  # the next month follows on from it
    assert usage.used == 1


async def test_two_processes_on_one_usage_file_share_the_count(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "usage.json"
    one = QuotaGovernor(RateLimits(1000, 60.0, 30), clock=clock, backend=FileGovernorBackend(path))
    two = QuotaGovernor(RateLimits(1000, 60.0, 30), clock=clock, backend=FileGovernorBackend(path))
    results = await asyncio.gather(
        *(g.admit() for _ in range(20) for g in (one, two)), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 30
    assert (await one.usage()).used == 30
    assert path.stat().st_mode & 0o777 == 0o600
    await one.reset()
    assert (await two.usage()).used == 0


async def test_memory_backend_states_are_per_plan() -> None:
    backend = MemoryGovernorBackend()
    clock = FakeClock()
    a = QuotaGovernor(RateLimits.WATT, clock=clock, backend=backend, used=5)
    b = QuotaGovernor(RateLimits.PARTNER, clock=clock, backend=backend)
    await a.admit()
    await b.admit()
    assert (await a.usage()).used == 6
    assert (await b.usage()).used == 1


async def test_forecast_follows_the_pace() -> None:
    clock = FakeClock()
    governor = QuotaGovernor(RateLimits(1000, 60.0, 100_000), clock=clock)
    for _ in range(100):
        await governor.admit()
    clock.now = JUNE + 86_400  # 100 requests in the first day of a 30-day month
    usage = await governor.usage()
    assert usage.forecast == pytest.approx(3000, rel=0.01)
