"""LiveBudget and LiveLedger: what staying live may cost, on a clock the test moves."""

from __future__ import annotations

from decimal import Decimal

import pytest

from enphase_battery import InvalidRequestError, RateLimits
from enphase_battery.live import LiveBudget, LiveLedger, default_fallback_interval_s


class Clock:
    def __init__(self) -> None:
        self.now = 1_780_000_000.0

    def __call__(self) -> float:
        return self.now


def test_per_hour_window_slides() -> None:
    clock = Clock()
    ledger = LiveLedger(LiveBudget(per_hour=2), clock=clock)
    ledger.record()
    clock.now += 600
    ledger.record()
    assert not ledger.allows()
    # The first connection leaves the hour at +3600: that is when the next one fits.
    assert ledger.next_allowed_at() == pytest.approx(1_780_000_000.0 + 3600)
    clock.now = 1_780_000_000.0 + 3600.5
    assert ledger.allows()
    snap = ledger.snapshot()
    assert (snap.connections, snap.last_hour, snap.last_day) == (2, 1, 2)


def test_per_day_and_total_and_money() -> None:
    clock = Clock()
    ledger = LiveLedger(LiveBudget(per_day=3, max_spend="0.25"), clock=clock)
    ledger.record()
    ledger.record()
    assert ledger.spent == Decimal("0.20")
    # A third connection would cost 0.30 > 0.25: never again, whatever the day.
    assert ledger.next_allowed_at() is None
    assert ledger.snapshot().exhausted
    total = LiveLedger(LiveBudget(total=1), clock=clock)
    total.record()
    clock.now += 10 * 86_400
    assert total.next_allowed_at() is None


def test_a_custom_price() -> None:
    ledger = LiveLedger(LiveBudget(price="0.05", max_spend=1))
    for _ in range(20):
        assert ledger.allows()
        ledger.record()
    assert not ledger.allows()
    assert ledger.spent == Decimal("1.00")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12/h", LiveBudget(per_hour=12)),
        ("100/day, $5", LiveBudget(per_day=100, max_spend=Decimal(5))),
        ("50", LiveBudget(total=50)),
        ("2.50usd", LiveBudget(max_spend=Decimal("2.50"))),
    ],
)
def test_parse(text: str, expected: LiveBudget) -> None:
    assert LiveBudget.parse(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "12/week", "$-1"])
def test_parse_refuses_nonsense(text: str) -> None:
    with pytest.raises(InvalidRequestError):
        LiveBudget.parse(text)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(InvalidRequestError):
        LiveBudget(per_hour=-1)
    with pytest.raises(InvalidRequestError):
        LiveBudget(max_spend="a lot")
    with pytest.raises(InvalidRequestError):
        LiveLedger("12/h")  # type: ignore[arg-type]


def test_fallback_interval_follows_the_plan_quota() -> None:
    assert default_fallback_interval_s(RateLimits.WATT) == pytest.approx(2_629_800 / 250)
    assert default_fallback_interval_s(RateLimits.KILOWATT) == pytest.approx(210.384)
    assert default_fallback_interval_s(RateLimits.PARTNER) == 60.0
