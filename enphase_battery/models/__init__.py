"""Typed models of the API's answers.

Attributes keep the API's JSON field names (already snake_case), with datetimes tz-aware
UTC, energy in Wh, enums for fixed vocabularies, unknown extra fields ignored and missing
optional fields ``None``.  One shared ``cattrs`` converter (:data:`converter`) builds them
from JSON and turns request bodies back into JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import BatterySettings, GridStatus, LoadCircuit, LoadControl, StormGuard
from .discovery import Address, Device, DeviceGroups, System, SystemDevices
from .telemetry import (
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
from .vocabulary import (
    BatteryMode,
    BatteryState,
    Flag,
    Granularity,
    GridState,
    LoadControlMode,
    Percent,
)

if TYPE_CHECKING:
    from ._converter import converter

__all__ = [
    "Address",
    "BatteryInterval",
    "BatteryLifetime",
    "BatteryMode",
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
    "LifetimeDay",
    "LifetimeMeta",
    "LoadCircuit",
    "LoadControl",
    "LoadControlMode",
    "Percent",
    "SocReading",
    "StormGuard",
    "System",
    "SystemDevices",
    "converter",
]


def __getattr__(name: str) -> Any:
    # The converter (and cattrs with it, a large import) loads when first asked for: the
    # client structures its first answer with it, ``--help`` and a bare import never do.
    if name == "converter":
        from ._converter import converter

        globals()["converter"] = converter  # found directly from now on
        return converter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
