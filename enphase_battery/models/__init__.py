"""Typed models of the API's answers, of what the pollers deliver (:mod:`.delivered`), and
the argument checks that turn a caller's values into the API's form (:mod:`.validation`).

May import ``util`` and ``exceptions`` only.

Attributes keep the API's JSON field names (already snake_case), with datetimes tz-aware
UTC, energy in Wh, enums for fixed vocabularies, unknown extra fields ignored and missing
optional fields ``None``.  One shared ``cattrs`` converter (:data:`converter`) builds them
from JSON and turns request bodies back into JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from enphase_battery.models.config import (
    BatterySettings,
    GridStatus,
    LoadCircuit,
    LoadControl,
    StormGuard,
)
from enphase_battery.models.confirmation import WriteConfirmation, WriteOutcome
from enphase_battery.models.delivered import BATTERY, INTERVAL_S, StreamKey, TelemetryInterval
from enphase_battery.models.discovery import Address, Device, DeviceGroups, System, SystemDevices
from enphase_battery.models.live import LiveFrame, LiveSource
from enphase_battery.models.now import (
    LatestDevice,
    LatestTelemetry,
    MeterReading,
    StorageMeterReadings,
    SystemSummary,
)
from enphase_battery.models.telemetry import (
    BatteryInterval,
    BatteryLifetime,
    BatteryTelemetry,
    EnchargeInterval,
    EnchargeTelemetry,
    EnergyReading,
    LifetimeDay,
    LifetimeMeta,
    SocReading,
)
from enphase_battery.models.vocabulary import (
    BatteryMode,
    BatteryState,
    Flag,
    Granularity,
    GridState,
    LoadControlMode,
    Percent,
)

if TYPE_CHECKING:
    from enphase_battery.models._converter import converter
    from enphase_battery.models.commissioning import (
        BatteryModeSettings,
        BatteryModeUpdate,
        SystemTariff,
        Tariff,
        TariffDayGroup,
        TariffPeriod,
        TariffRate,
        TariffSeason,
        TariffStorageSettings,
        TariffTask,
    )

#: The Commissioning API's models (Partner plan), loaded when first asked for: a client
#: that never reads a tariff does not pay for its ten classes at start-up.
_COMMISSIONING = frozenset(
    {
        "BatteryModeSettings",
        "BatteryModeUpdate",
        "SystemTariff",
        "Tariff",
        "TariffDayGroup",
        "TariffPeriod",
        "TariffRate",
        "TariffSeason",
        "TariffStorageSettings",
        "TariffTask",
    }
)

__all__ = [
    "BATTERY",
    "INTERVAL_S",
    "Address",
    "BatteryInterval",
    "BatteryLifetime",
    "BatteryMode",
    "BatteryModeSettings",
    "BatteryModeUpdate",
    "BatterySettings",
    "BatteryState",
    "BatteryTelemetry",
    "Device",
    "DeviceGroups",
    "EnchargeInterval",
    "EnchargeTelemetry",
    "EnergyReading",
    "Flag",
    "Granularity",
    "GridState",
    "GridStatus",
    "LatestDevice",
    "LatestTelemetry",
    "LifetimeDay",
    "LifetimeMeta",
    "LiveFrame",
    "LiveSource",
    "LoadCircuit",
    "LoadControl",
    "LoadControlMode",
    "MeterReading",
    "Percent",
    "SocReading",
    "StorageMeterReadings",
    "StormGuard",
    "StreamKey",
    "System",
    "SystemDevices",
    "SystemSummary",
    "SystemTariff",
    "Tariff",
    "TariffDayGroup",
    "TariffPeriod",
    "TariffRate",
    "TariffSeason",
    "TariffStorageSettings",
    "TariffTask",
    "TelemetryInterval",
    "WriteConfirmation",
    "WriteOutcome",
    "converter",
]


def __getattr__(name: str) -> Any:
    # The converter (and cattrs with it, a large import) loads when first asked for: the
    # client structures its first answer with it, ``--help`` and a bare import never do.
    if name == "converter":
        from enphase_battery.models._converter import converter

        globals()["converter"] = converter  # found directly from now on
        return converter
    if name in _COMMISSIONING:
        from enphase_battery.models import commissioning

        value = getattr(commissioning, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
