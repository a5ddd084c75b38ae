"""Fixed vocabularies of the API: enums, loosely parsed, sent in the official spelling."""

from __future__ import annotations

import enum
import re
from typing import NewType

__all__ = ["BatteryMode", "Flag", "Granularity", "GridState", "LoadControlMode", "Percent"]

#: "enabled"/"disabled" (also "true"/"false", "Enabled (Inactive)") parsed to a bool.
Flag = NewType("Flag", bool)
#: A percentage that the API sometimes sends as a string ("97%").
Percent = NewType("Percent", int)


def _squash(value: str) -> str:
    return re.sub(r"[^a-z0-9]", "", value.lower())


class BatteryMode(enum.StrEnum):
    """The battery profile; values are the official v4 spellings (case sensitive on PUT)."""

    SAVINGS = "Savings Mode"
    SELF_CONSUMPTION = "Self-consumption"
    FULL_BACKUP = "Full Backup"

    @classmethod
    def parse(cls, value: str) -> BatteryMode:
        """Parse loosely: case, spaces and punctuation are ignored ("Self - Consumption")."""
        squashed = _squash(value)
        for member in cls:
            if squashed == _squash(member.value) or squashed == _squash(member.name):
                return member
        aliases = {
            "savings": cls.SAVINGS,
            "backup": cls.FULL_BACKUP,
            "selfconsume": cls.SELF_CONSUMPTION,
        }
        if squashed in aliases:
            return aliases[squashed]
        raise ValueError(f"unknown battery mode {value!r}")


class GridState(enum.StrEnum):
    """Whether the site is connected to the grid."""

    ON_GRID = "On Grid"
    OFF_GRID = "Off Grid"
    UNKNOWN = "Unknown"

    @classmethod
    def parse(cls, value: str) -> GridState:
        squashed = _squash(value)
        for member in cls:
            if squashed == _squash(member.value):
                return member
        return cls.UNKNOWN


class LoadControlMode(enum.StrEnum):
    """The six modes of a load-control circuit (official spellings)."""

    SCHEDULED = "Scheduled"
    BASIC = "Basic"
    ADVANCED_BATTERY_POWERED = "Advanced_BatteryPowered"
    MANUAL_ALWAYS_NOT_POWERED = "Manual_always_not_powered"
    MANUAL_ALWAYS_POWERED = "Manual_always_powered"
    ADVANCED_GENERATOR_POWERED = "Advanced_GeneratorPowered"

    @classmethod
    def parse(cls, value: str) -> LoadControlMode:
        squashed = _squash(value)
        for member in cls:
            if squashed in (_squash(member.value), _squash(member.name)):
                return member
        raise ValueError(f"unknown load control mode {value!r}")


class Granularity(enum.StrEnum):
    """Telemetry window per request: one 15-minute interval, a day (96) or a week (672)."""

    FIFTEEN_MINUTES = "15mins"
    DAY = "day"
    WEEK = "week"

    @property
    def span_s(self) -> int:
        """Length of the window one request covers, in seconds."""
        return {"15mins": 900, "day": 86_400, "week": 604_800}[self.value]
