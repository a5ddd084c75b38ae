"""Plan rate limits as the server enforces them: a per-minute window and a monthly quota.

* The minute window is fixed (aligned to wall-clock minutes) and counts in REAL time,
  because clients pace themselves with real timers; ``minute_clock="simulated"`` counts
  it on the simulated clock instead, for clients that pace on that clock (fast-clock
  fleet tests and benchmarks).
* The monthly quota counts per calendar month (UTC) of the SIMULATED clock, so a
  fast-forwarded simulation rolls into a fresh month.
* Only requests that pass authentication count; a request refused with 429 does not.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from enphase_battery.quota.limits import RateLimits
from enphase_battery.simulator.clock import SimClock
from enphase_battery.simulator.errors import envelope

__all__ = ["PLANS", "PlanLimiter"]

#: Plan name -> limits; ``None`` is "unlimited" (no per-minute or monthly cap).
PLANS: dict[str, RateLimits | None] = {
    "watt": RateLimits.WATT,
    "kilowatt": RateLimits.KILOWATT,
    "megawatt": RateLimits.MEGAWATT,
    "partner": RateLimits.PARTNER,
    "unlimited": None,
}


def _month_bounds(moment: datetime) -> tuple[int, int]:
    start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return int(start.timestamp()), int(datetime(year, month, 1, tzinfo=UTC).timestamp())


class PlanLimiter:
    """Decides whether a request fits the plan, and builds the 429 body when not."""

    def __init__(
        self, plan: str | RateLimits, clock: SimClock, *, minute_clock: str = "real"
    ) -> None:
        if isinstance(plan, RateLimits):
            # A custom plan (small quotas keep month-long tests short).
            self.plan = plan.plan_name
            self.limits: RateLimits | None = plan
        else:
            key = plan.strip().lower()
            if key not in PLANS:
                raise ValueError(f"unknown plan {plan!r}; expected one of {', '.join(PLANS)}")
            self.plan = key
            self.limits = PLANS[key]
        if minute_clock not in ("real", "simulated"):
            raise ValueError("minute_clock must be 'real' or 'simulated'")
        self._minute_time = time.time if minute_clock == "real" else clock.timestamp
        self._clock = clock
        #: 429s sent, by period (``"minute"``, ``"month"``); injected faults excluded.
        self.refused: dict[str, int] = {"minute": 0, "month": 0}
        self._minute_start = 0
        self._minute_count = 0
        self._month_start = 0
        self._month_count = 0
        self._month_exhausted = False
        #: Requests counted in each simulated month that has ended, by its start (epoch).
        self.past_months: dict[int, int] = {}

    @property
    def plan_title(self) -> str:
        """The plan's name as the API writes it in 429 details ("Kilowatt")."""
        return self.plan.capitalize()

    @property
    def month_used(self) -> int:
        """Requests counted in the current simulated month."""
        self._roll_month()
        return self._month_count

    def exhaust_month(self) -> None:
        """Spend the rest of this simulated month's quota (even on an unlimited plan)."""
        self._roll_month()
        self._month_exhausted = True

    def reset(self) -> None:
        """Forget all counts."""
        self._minute_count = self._month_count = 0
        self._month_exhausted = False

    def _roll_month(self) -> tuple[int, int]:
        start, end = _month_bounds(self._clock.now())
        if start != self._month_start:
            if self._month_count:
                self.past_months[self._month_start] = self._month_count
            self._month_start, self._month_count = start, 0
            self._month_exhausted = False
        return start, end

    def admit(self) -> dict[str, Any] | None:
        """Count one request; returns the 429 body instead when it is over a limit."""
        month_start, month_end = self._roll_month()
        monthly = self.limits.monthly_quota if self.limits else None
        if self._month_exhausted or (monthly is not None and self._month_count >= monthly):
            self.refused["month"] += 1
            return self._too_many("month", month_start, month_end, monthly or 0)
        if self.limits is not None:
            now = self._minute_time()
            period = int(self.limits.time_period)
            minute_start = int(now // period) * period
            if minute_start != self._minute_start:
                self._minute_start, self._minute_count = minute_start, 0
            if self._minute_count >= self.limits.max_rate:
                self.refused["minute"] += 1
                return self._too_many(
                    "minute", minute_start, minute_start + period, int(self.limits.max_rate)
                )
            self._minute_count += 1
        self._month_count += 1
        return None

    def too_many_minute(self) -> dict[str, Any]:
        """A per-minute 429 body for the current window (used by injected 429s)."""
        period = int(self.limits.time_period) if self.limits else 60
        start = int(self._minute_time() // period) * period
        limit = int(self.limits.max_rate) if self.limits else 0
        return self._too_many("minute", start, start + period, limit)

    def _too_many(self, period: str, start: int, end: int, limit: int) -> dict[str, Any]:
        return envelope(
            429,
            f"Usage limit exceeded for plan {self.plan_title}",
            period=period,
            period_start=start,
            period_end=end,
            limit=limit,
        )
