"""Typed models of the API's answers.

Attributes keep the API's JSON field names (already snake_case), with datetimes tz-aware
UTC, energy in Wh, enums for fixed vocabularies, unknown extra fields ignored and missing
optional fields ``None``.  One shared ``cattrs`` converter (:data:`converter`) builds them
from JSON and turns request bodies back into JSON.
"""

from __future__ import annotations

from .config import BatterySettings, GridStatus, LoadCircuit, LoadControl, StormGuard
from .converter import converter
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
from .vocabulary import BatteryMode, Flag, Granularity, GridState, LoadControlMode, Percent

__all__ = [
    "Address",
    "BatteryInterval",
    "BatteryLifetime",
    "BatteryMode",
    "BatterySettings",
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
