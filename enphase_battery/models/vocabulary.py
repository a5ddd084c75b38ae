"""Fixed vocabularies of the API: enums, loosely parsed, sent in the official spelling."""

from __future__ import annotations

import enum
import functools
import re
from typing import Any, NewType, TypeVar

__all__ = [
    "BatteryMode",
    "BatteryState",
    "Flag",
    "Granularity",
    "GridState",
    "LoadControlMode",
    "Percent",
]

#: "enabled"/"disabled" (also "true"/"false", "Enabled (Inactive)") parsed to a bool.
Flag = NewType("Flag", bool)
#: A percentage that the API sometimes sends as a string ("97%").
Percent = NewType("Percent", int)


# Answers repeat the same few spellings, and parsing is on every configuration call:
# the squashed form of a spelling is remembered (bounded), and each enum's table is built once.
@functools.lru_cache(maxsize=1024)
def _squash(value: str) -> str:
    return re.sub(r"[^a-z0-9]", "", value.lower())


_E = TypeVar("_E", bound=enum.Enum)
_TABLES: dict[type[enum.Enum], dict[str, Any]] = {}


def _table(cls: type[_E]) -> dict[str, _E]:
    """Squashed value and name -> member; on a clash the earlier member wins."""
    table = _TABLES.get(cls)
    if table is None:
        table = {}
        for member in cls:
            table.setdefault(_squash(str(member.value)), member)
            table.setdefault(_squash(member.name), member)
        _TABLES[cls] = table
    return table


def _match(cls: type[_E], value: str, aliases: dict[str, _E] | None = None) -> _E | None:
    """The member whose value or name matches ``value`` ignoring case and punctuation."""
    squashed = _squash(value)
    member = _table(cls).get(squashed)
    if member is not None:
        return member
    return (aliases or {}).get(squashed)


class BatteryMode(enum.StrEnum):
    """The battery profile; values are the official v4 spellings (case sensitive on PUT)."""

    SAVINGS = "Savings Mode"
    SELF_CONSUMPTION = "Self-consumption"
    FULL_BACKUP = "Full Backup"

    @classmethod
    def parse(cls, value: str) -> BatteryMode:
        """Parse loosely: case, spaces and punctuation are ignored ("Self - Consumption")."""
        aliases = {
            "savings": cls.SAVINGS,
            "backup": cls.FULL_BACKUP,
            "selfconsume": cls.SELF_CONSUMPTION,
        }
        member = _match(cls, value, aliases)
        if member is None:
            raise ValueError(f"unknown battery mode {value!r}")
        return member


class BatteryState(enum.StrEnum):
    """What an Encharge is doing: ``latest_telemetry``'s ``operational_mode``.

    The official spec (fact sheet §8) gives ``Idle``, ``Charging`` and ``Discharging``:
    the battery's state, not its profile (that is :class:`BatteryMode`).  Anything else
    parses to :attr:`UNKNOWN`, so a new word from the API never fails a call.
    """

    IDLE = "Idle"
    CHARGING = "Charging"
    DISCHARGING = "Discharging"
    UNKNOWN = "Unknown"

    @classmethod
    def parse(cls, value: str) -> BatteryState:
        """Parse loosely; anything unrecognised is :attr:`UNKNOWN`."""
        return _match(cls, value) or cls.UNKNOWN

    def signed_discharge_w(self, power_w: int | None) -> int | None:
        """W leaving the battery: the magnitude of ``power_w``, the direction of this state.

        The sign of ``power`` is undocumented and the official examples contradict each
        other, so only its magnitude is read.  ``Idle`` is 0 whatever standby power the
        device shows; :attr:`UNKNOWN` (or no power) is ``None``.
        """
        if power_w is None or self is BatteryState.UNKNOWN:
            return None
        if self is BatteryState.IDLE:
            return 0
        return abs(power_w) if self is BatteryState.DISCHARGING else -abs(power_w)


class GridState(enum.StrEnum):
    """Whether the site is connected to the grid."""

    ON_GRID = "On Grid"
    OFF_GRID = "Off Grid"
    UNKNOWN = "Unknown"

    @classmethod
    def parse(cls, value: str) -> GridState:
        """Parse loosely; anything unrecognised is :attr:`UNKNOWN`."""
        return _match(cls, value) or cls.UNKNOWN


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
        """Parse loosely: case and punctuation are ignored."""
        member = _match(cls, value)
        if member is None:
            raise ValueError(f"unknown load control mode {value!r}")
        return member


class Granularity(enum.StrEnum):
    """Telemetry window per request: one 15-minute interval, a day (96) or a week (672)."""

    FIFTEEN_MINUTES = "15mins"
    DAY = "day"
    WEEK = "week"

    @property
    def span_s(self) -> int:
        """Length of the window one request covers, in seconds."""
        return {"15mins": 900, "day": 86_400, "week": 604_800}[self.value]
