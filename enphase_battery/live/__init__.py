"""Live data: the budgeted ``live_data`` stream with its ``latest_telemetry`` fallback, and
``battery_now``, the battery's state in one answer as cheaply as the plan allows.

May import ``util``, ``exceptions``, ``models``, ``quota`` and ``http``; the client comes
in as a protocol (:class:`~enphase_battery.live.now.NowReads`).
"""

from __future__ import annotations

from enphase_battery.live.budget import LIVE_PRICE_PER_CONNECTION, LiveBudget, LiveLedger, LiveSpend
from enphase_battery.live.connect import LiveTransport
from enphase_battery.live.errors import (
    LIVE_ERROR_CODES,
    GatewayNotReportingError,
    LiveBudgetExhaustedError,
    LiveDataError,
    LiveDurationError,
    LiveServerError,
    LiveUnsupportedError,
)
from enphase_battery.live.fallback import default_fallback_interval_s
from enphase_battery.live.now import BatteryNow, NowReads, battery_now
from enphase_battery.live.session import (
    DEFAULT_DURATION_S,
    MAX_DURATION_S,
    MIN_DURATION_S,
    LiveSession,
)
from enphase_battery.live.stats import LiveStats

__all__ = [
    "DEFAULT_DURATION_S",
    "LIVE_ERROR_CODES",
    "LIVE_PRICE_PER_CONNECTION",
    "MAX_DURATION_S",
    "MIN_DURATION_S",
    "BatteryNow",
    "GatewayNotReportingError",
    "LiveBudget",
    "LiveBudgetExhaustedError",
    "LiveDataError",
    "LiveDurationError",
    "LiveLedger",
    "LiveServerError",
    "LiveSession",
    "LiveSpend",
    "LiveStats",
    "LiveTransport",
    "LiveUnsupportedError",
    "NowReads",
    "battery_now",
    "default_fallback_interval_s",
]
