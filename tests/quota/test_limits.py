"""Plan presets, the limiter's window guarantee and the monthly quota."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from enphase_battery import InvalidRequestError, MonthlyQuota, RateLimits
from tests.support.clients import MakeClient
from tests.support.fake_api import SYSTEM_ID, FakeEnphase


@pytest.mark.parametrize(
    ("preset", "name", "per_minute", "per_month"),
    [
        (RateLimits.WATT, "watt", 10, 1_000),
        (RateLimits.KILOWATT, "kilowatt", 50, 50_000),
        (RateLimits.MEGAWATT, "megawatt", 100, 300_000),
        (RateLimits.PARTNER, "partner", 300, 1_500_000),
    ],
)
def test_presets(preset: RateLimits, name: str, per_minute: int, per_month: int) -> None:
    assert preset.max_rate == per_minute
    assert preset.time_period == 60.0
    assert preset.monthly_quota == per_month
    assert RateLimits.for_plan(name) is preset
    assert RateLimits.for_plan(f" {name.upper()} ") is preset
    assert preset.min_spacing_s == pytest.approx(60.0 / per_minute)


def test_unknown_plan() -> None:
    with pytest.raises(InvalidRequestError, match="unknown plan"):
        RateLimits.for_plan("gigawatt")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_rate": 0},
        {"max_rate": -1},
        {"max_rate": 1, "time_period": 0},
        {"max_rate": 1, "monthly_quota": 0},
        {"max_rate": 1, "monthly_quota": True},
        {"max_rate": 1, "monthly_quota": 1.5},
    ],
)
def test_invalid_limits(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidRequestError):
        RateLimits(**kwargs)  # type: ignore[arg-type]


def max_in_window(times: list[float], window: float) -> int:
    """The most timestamps inside any half-open window [t, t + window)."""
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


async def test_limiter_never_exceeds_max_rate_in_a_window() -> None:
    limits = RateLimits(5, 0.25)
    limiter = limits.make_limiter()
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        times.append(loop.time())

    await asyncio.gather(*(one() for _ in range(16)))
    assert len(times) == 16
    # 1% slack for timer granularity; a bursty bucket would allow 9 or more here.
    assert max_in_window(times, 0.25 * 0.99) <= 5


async def test_client_requests_respect_the_limit(
    fake: FakeEnphase, make_client: MakeClient
) -> None:
    # A period long enough that scheduling jitter on a loaded machine (tens of ms) cannot
    # squeeze five requests into one window unless the spacing itself is wrong.
    client = make_client(rate_limits=RateLimits(4, 1.0))
    await asyncio.gather(*(client.get_system_grid_status(SYSTEM_ID) for _ in range(8)))
    times = [rec.at for rec in fake.requests]
    assert len(times) == 8
    assert max_in_window(times, 1.0 * 0.9) <= 4


def test_monthly_quota_counts() -> None:
    quota = MonthlyQuota(3, used=1)
    assert quota.used == 1
    assert quota.remaining == 2
    quota.record()
    quota.record()
    assert quota.remaining == 0
    quota.record()
    assert quota.remaining == 0  # never negative
    assert MonthlyQuota(None).remaining is None


def test_monthly_quota_marked_exhausted() -> None:
    quota = MonthlyQuota(None)
    quota.mark_exhausted(datetime.now(UTC) + timedelta(hours=1))
    assert quota.remaining == 0
    quota.mark_exhausted(datetime.now(UTC) - timedelta(seconds=1))
    assert quota.remaining is None  # the reset has passed
    capped = MonthlyQuota(100, used=5)
    capped.mark_exhausted(None)  # until the month's end
    assert capped.remaining == 0
    assert capped.used == 100
