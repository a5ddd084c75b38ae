"""Live data: the budgeted ``live_data`` stream with its ``latest_telemetry`` fallback."""

from __future__ import annotations

from .budget import LIVE_PRICE_PER_CONNECTION, LiveBudget, LiveLedger, LiveSpend
from .connect import LiveTransport
from .errors import (
    LIVE_ERROR_CODES,
    GatewayNotReportingError,
    LiveBudgetExhaustedError,
    LiveDataError,
    LiveDurationError,
    LiveServerError,
    LiveUnsupportedError,
)
from .fallback import default_fallback_interval_s
from .session import DEFAULT_DURATION_S, MAX_DURATION_S, MIN_DURATION_S, LiveSession
from .stats import LiveStats

__all__ = [
    "DEFAULT_DURATION_S",
    "LIVE_ERROR_CODES",
    "LIVE_PRICE_PER_CONNECTION",
    "MAX_DURATION_S",
    "MIN_DURATION_S",
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
    "default_fallback_interval_s",
]
