"""enphase_battery: asyncio SDK for Enphase IQ Batteries (Enlighten Systems API v4).

The public API is importable from here; see README.md for a quick start.

Names are imported on first use (module ``__getattr__``): ``import enphase_battery`` costs
next to nothing, and ``from enphase_battery import EnphaseClient`` loads the client and
what it needs, not the poller, the fleet engine, SQLite, the simulator or the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _lazy

if TYPE_CHECKING:
    from .auth import (
        DEFAULT_AUTHORIZE_URL,
        DEFAULT_REDIRECT_URI,
        DEFAULT_TOKEN_URL,
        AccessTokenProvider,
        FileTokenStore,
        OAuth2Token,
        TokenManager,
    )
    from .checkpoint import CheckpointStore, MemoryCheckpoint, SqliteCheckpoint, StreamState
    from .client import DEFAULT_BASE_URL, EnphaseClient
    from .clock import SYSTEM_CLOCK, Clock
    from .delivery import Batch
    from .exceptions import (
        ApiError,
        AuthenticationError,
        CheckpointError,
        CheckpointInUseError,
        EnphaseConnectionError,
        EnphaseError,
        InvalidRequestError,
        NotFoundError,
        PermissionDeniedError,
        QuotaExceededError,
        RateLimitError,
        ResponseFormatError,
    )
    from .fleet import FleetPoller
    from .fleet_views import FleetProgress, SystemProblem, SystemProgress
    from .governor import QuotaGovernor, QuotaUsage, background_work
    from .governor_file import FileGovernorBackend
    from .limits import MonthlyQuota, RateLimits
    from .live import (
        GatewayNotReportingError,
        LiveBudget,
        LiveBudgetExhaustedError,
        LiveDataError,
        LiveDurationError,
        LiveLedger,
        LiveServerError,
        LiveSession,
        LiveSpend,
        LiveStats,
        LiveUnsupportedError,
    )
    from .live.now import BatteryNow, battery_now
    from .models import (
        Address,
        BatteryInterval,
        BatteryLifetime,
        BatteryMode,
        BatterySettings,
        BatteryTelemetry,
        Device,
        DeviceGroups,
        EnchargeInterval,
        EnchargeTelemetry,
        EnergyReading,
        Granularity,
        GridState,
        GridStatus,
        LifetimeDay,
        LifetimeMeta,
        LoadCircuit,
        LoadControl,
        LoadControlMode,
        SocReading,
        StormGuard,
        System,
        SystemDevices,
    )
    from .models.live import LiveFrame, LiveSource
    from .models.now import (
        LatestDevice,
        LatestTelemetry,
        MeterReading,
        StorageMeterReadings,
        SystemSummary,
    )
    from .poller import BATTERY, PollerProgress, TelemetryInterval, TelemetryPoller
    from .reconcile import Reconciliation, SpanCheck, Verdict
    from .routes import ROUTES, Route

__version__ = "0.1.0"

__all__ = [
    "BATTERY",
    "DEFAULT_AUTHORIZE_URL",
    "DEFAULT_BASE_URL",
    "DEFAULT_REDIRECT_URI",
    "DEFAULT_TOKEN_URL",
    "ROUTES",
    "SYSTEM_CLOCK",
    "AccessTokenProvider",
    "Address",
    "ApiError",
    "AuthenticationError",
    "Batch",
    "BatteryInterval",
    "BatteryLifetime",
    "BatteryMode",
    "BatteryNow",
    "BatterySettings",
    "BatteryTelemetry",
    "CheckpointError",
    "CheckpointInUseError",
    "CheckpointStore",
    "Clock",
    "Device",
    "DeviceGroups",
    "EnchargeInterval",
    "EnchargeTelemetry",
    "EnergyReading",
    "EnphaseClient",
    "EnphaseConnectionError",
    "EnphaseError",
    "FileGovernorBackend",
    "FileTokenStore",
    "FleetPoller",
    "FleetProgress",
    "GatewayNotReportingError",
    "Granularity",
    "GridState",
    "GridStatus",
    "InvalidRequestError",
    "LatestDevice",
    "LatestTelemetry",
    "LifetimeDay",
    "LifetimeMeta",
    "LiveBudget",
    "LiveBudgetExhaustedError",
    "LiveDataError",
    "LiveDurationError",
    "LiveFrame",
    "LiveLedger",
    "LiveServerError",
    "LiveSession",
    "LiveSource",
    "LiveSpend",
    "LiveStats",
    "LiveUnsupportedError",
    "LoadCircuit",
    "LoadControl",
    "LoadControlMode",
    "MemoryCheckpoint",
    "MeterReading",
    "MonthlyQuota",
    "NotFoundError",
    "OAuth2Token",
    "PermissionDeniedError",
    "PollerProgress",
    "QuotaExceededError",
    "QuotaGovernor",
    "QuotaUsage",
    "RateLimitError",
    "RateLimits",
    "Reconciliation",
    "ResponseFormatError",
    "Route",
    "SocReading",
    "SpanCheck",
    "SqliteCheckpoint",
    "StorageMeterReadings",
    "StormGuard",
    "StreamState",
    "System",
    "SystemDevices",
    "SystemProblem",
    "SystemProgress",
    "SystemSummary",
    "TelemetryInterval",
    "TelemetryPoller",
    "TokenManager",
    "Verdict",
    "__version__",
    "background_work",
    "battery_now",
]

#: Public name -> the module that defines it.  A new public name goes in three places:
#: the TYPE_CHECKING imports above, ``__all__`` and here (tests/test_lazy_imports.py
#: checks that they agree).
_SUBMODULE: dict[str, str] = {
    "DEFAULT_AUTHORIZE_URL": ".auth",
    "DEFAULT_REDIRECT_URI": ".auth",
    "DEFAULT_TOKEN_URL": ".auth",
    "AccessTokenProvider": ".auth",
    "FileTokenStore": ".auth",
    "OAuth2Token": ".auth",
    "TokenManager": ".auth",
    "CheckpointStore": ".checkpoint",
    "MemoryCheckpoint": ".checkpoint",
    "SqliteCheckpoint": ".checkpoint",
    "StreamState": ".checkpoint",
    "DEFAULT_BASE_URL": ".client",
    "EnphaseClient": ".client",
    "SYSTEM_CLOCK": ".clock",
    "Clock": ".clock",
    "ApiError": ".exceptions",
    "AuthenticationError": ".exceptions",
    "CheckpointError": ".exceptions",
    "CheckpointInUseError": ".exceptions",
    "EnphaseConnectionError": ".exceptions",
    "EnphaseError": ".exceptions",
    "InvalidRequestError": ".exceptions",
    "NotFoundError": ".exceptions",
    "PermissionDeniedError": ".exceptions",
    "QuotaExceededError": ".exceptions",
    "RateLimitError": ".exceptions",
    "ResponseFormatError": ".exceptions",
    "FleetPoller": ".fleet",
    "FleetProgress": ".fleet_views",
    "SystemProblem": ".fleet_views",
    "SystemProgress": ".fleet_views",
    "QuotaGovernor": ".governor",
    "QuotaUsage": ".governor",
    "background_work": ".governor",
    "FileGovernorBackend": ".governor_file",
    "MonthlyQuota": ".limits",
    "RateLimits": ".limits",
    "GatewayNotReportingError": ".live",
    "LiveBudget": ".live",
    "LiveBudgetExhaustedError": ".live",
    "LiveDataError": ".live",
    "LiveDurationError": ".live",
    "LiveLedger": ".live",
    "LiveServerError": ".live",
    "LiveSession": ".live",
    "LiveSpend": ".live",
    "LiveStats": ".live",
    "LiveUnsupportedError": ".live",
    "BatteryNow": ".live.now",
    "battery_now": ".live.now",
    "Address": ".models",
    "BatteryInterval": ".models",
    "BatteryLifetime": ".models",
    "BatteryMode": ".models",
    "BatterySettings": ".models",
    "BatteryTelemetry": ".models",
    "Device": ".models",
    "DeviceGroups": ".models",
    "EnchargeInterval": ".models",
    "EnchargeTelemetry": ".models",
    "EnergyReading": ".models",
    "Granularity": ".models",
    "GridState": ".models",
    "GridStatus": ".models",
    "LifetimeDay": ".models",
    "LifetimeMeta": ".models",
    "LoadCircuit": ".models",
    "LoadControl": ".models",
    "LoadControlMode": ".models",
    "SocReading": ".models",
    "StormGuard": ".models",
    "System": ".models",
    "SystemDevices": ".models",
    "LiveFrame": ".models.live",
    "LiveSource": ".models.live",
    "LatestDevice": ".models.now",
    "LatestTelemetry": ".models.now",
    "MeterReading": ".models.now",
    "StorageMeterReadings": ".models.now",
    "SystemSummary": ".models.now",
    "Batch": ".delivery",
    "BATTERY": ".poller",
    "PollerProgress": ".poller",
    "TelemetryInterval": ".poller",
    "TelemetryPoller": ".poller",
    "Reconciliation": ".reconcile",
    "SpanCheck": ".reconcile",
    "Verdict": ".reconcile",
    "ROUTES": ".routes",
    "Route": ".routes",
}


def __getattr__(name: str) -> Any:
    return _lazy.load(__name__, globals(), _SUBMODULE, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULE})
