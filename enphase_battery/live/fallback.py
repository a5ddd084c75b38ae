"""How often a live session polls ``latest_telemetry`` when live data is not to be had."""

from __future__ import annotations

from enphase_battery.quota.limits import RateLimits

__all__ = ["default_fallback_interval_s"]

#: Share of the plan's monthly quota the fallback polling may use by default, and its
#: floor in seconds (``latest_telemetry`` hardly changes faster).
_FALLBACK_QUOTA_SHARE = 0.25
_FALLBACK_MIN_S = 60.0
_MONTH_S = 2_629_800.0


def default_fallback_interval_s(rate_limits: RateLimits) -> float:
    """Seconds between ``latest_telemetry`` polls: a quarter of the monthly quota, >= 60 s.

    Watt (1,000 a month): about 2 h 55 min; Kilowatt: 210 s; Megawatt and up: 60 s.
    """
    quota = rate_limits.monthly_quota
    if not quota:
        return _FALLBACK_MIN_S
    return max(_FALLBACK_MIN_S, _MONTH_S / (quota * _FALLBACK_QUOTA_SHARE))
