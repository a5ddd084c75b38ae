"""Request pacing: the per-minute rate limit and the monthly quota of an API plan.

The plan numbers are second-hand (fact sheet §2); they live in the presets below and
nowhere else.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

import attrs

from enphase_battery.exceptions import InvalidRequestError

if TYPE_CHECKING:
    from aiolimiter import AsyncLimiter

__all__ = ["MonthlyQuota", "RateLimits"]


def _positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise InvalidRequestError(f"{attribute.name} must be positive, got {value!r}")


def _quota(_instance: object, _attribute: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidRequestError(f"monthly_quota must be a positive int or None, got {value!r}")


@attrs.frozen
class RateLimits:
    """How fast, and how much per calendar month, the client may call the API.

    ``max_rate`` requests per ``time_period`` seconds, and at most ``monthly_quota``
    requests a month (``None``: no monthly cap).  Presets follow the Enphase API plans:
    :attr:`WATT` (free, the default), :attr:`KILOWATT`, :attr:`MEGAWATT`, :attr:`PARTNER`.
    """

    max_rate: float = attrs.field(validator=_positive)
    time_period: float = attrs.field(default=60.0, validator=_positive)
    monthly_quota: int | None = attrs.field(default=None, validator=_quota)
    #: The plan's name (``"watt"``...; set on the presets).  Quota counts are kept per plan.
    name: str | None = attrs.field(default=None, eq=False, kw_only=True)

    WATT: ClassVar[RateLimits]
    KILOWATT: ClassVar[RateLimits]
    MEGAWATT: ClassVar[RateLimits]
    PARTNER: ClassVar[RateLimits]

    @property
    def plan_name(self) -> str:
        """The preset's name, or one derived from the numbers for a custom plan."""
        if self.name:
            return self.name
        quota = "unlimited" if self.monthly_quota is None else str(self.monthly_quota)
        return f"custom-{self.max_rate:g}per{self.time_period:g}s-{quota}"

    @property
    def min_spacing_s(self) -> float:
        """Seconds between two requests when they are spread evenly."""
        return self.time_period / self.max_rate

    def make_limiter(self) -> AsyncLimiter:
        """An ``aiolimiter`` bucket that never lets ``max_rate`` be exceeded in any window.

        The API counts requests in fixed windows.  A bucket of capacity ``max_rate`` would
        allow a full burst at the end of one window and nearly another within the next
        (up to ~2x in 60 s), which the server answers with 429.  A bucket of capacity one
        that leaks one request every ``time_period / max_rate`` seconds cannot.
        """
        # Imported here: aiolimiter reads its package metadata at import (several ms of
        # every start-up), and the client itself paces through the QuotaGovernor.
        from aiolimiter import AsyncLimiter

        return AsyncLimiter(1, self.min_spacing_s)

    @classmethod
    def for_plan(cls, name: str) -> RateLimits:
        """The preset named ``name`` (``watt``, ``kilowatt``, ``megawatt``, ``partner``)."""
        presets = {
            "watt": cls.WATT,
            "kilowatt": cls.KILOWATT,
            "megawatt": cls.MEGAWATT,
            "partner": cls.PARTNER,
        }
        try:
            return presets[name.strip().lower()]
        except KeyError:
            raise InvalidRequestError(
                f"unknown plan {name!r}; expected one of {', '.join(presets)}"
            ) from None


RateLimits.WATT = RateLimits(10, 60.0, 1_000, name="watt")
RateLimits.KILOWATT = RateLimits(50, 60.0, 50_000, name="kilowatt")
RateLimits.MEGAWATT = RateLimits(100, 60.0, 300_000, name="megawatt")
RateLimits.PARTNER = RateLimits(300, 60.0, 1_500_000, name="partner")


def _month_key(moment: datetime) -> tuple[int, int]:
    moment = moment.astimezone(UTC)
    return (moment.year, moment.month)


class MonthlyQuota:
    """Counts requests against a monthly quota, resetting each calendar month (UTC).

    A process only sees its own requests; seed ``used`` from your records when other
    programs share the same API key.  The client also marks the quota spent when the API
    answers 429 with ``period: month``.
    """

    def __init__(self, quota: int | None, *, used: int = 0) -> None:
        self.quota = quota
        self._used = used
        self._month = _month_key(datetime.now(UTC))
        self._exhausted_until: datetime | None = None

    def _roll(self) -> None:
        month = _month_key(datetime.now(UTC))
        if month != self._month:
            self._month = month
            self._used = 0
            self._exhausted_until = None

    @property
    def used(self) -> int:
        """Requests sent this calendar month."""
        self._roll()
        return self._used

    @property
    def remaining(self) -> int | None:
        """Requests left this month (``None``: no monthly cap)."""
        self._roll()
        if self._exhausted_until is not None:
            if datetime.now(UTC) < self._exhausted_until:
                return 0
            self._exhausted_until = None
        if self.quota is None:
            return None
        return max(0, self.quota - self._used)

    def record(self) -> None:
        """Count one request sent."""
        self._roll()
        self._used += 1

    def mark_exhausted(self, until: datetime | None) -> None:
        """The server says the month is spent (until ``until``, or the month's end)."""
        self._roll()
        if until is None:
            now = datetime.now(UTC)
            year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
            until = datetime(year, month, 1, tzinfo=UTC)
        self._exhausted_until = until
        if self.quota is not None:
            self._used = max(self._used, self.quota)
