"""Typed models of the API's answers.

Attributes keep the API's JSON field names (already snake_case), with datetimes tz-aware
UTC, energy in Wh, enums for fixed vocabularies, unknown extra fields ignored and missing
optional fields ``None``.  One shared ``cattrs`` converter (:data:`converter`) builds them
from JSON and turns request bodies back into JSON.
"""

from __future__ import annotations

import enum
import logging
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NewType

import attrs
import cattrs

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
    "Granularity",
    "GridState",
    "GridStatus",
    "LifetimeDay",
    "LifetimeMeta",
    "LoadCircuit",
    "LoadControl",
    "LoadControlMode",
    "SocReading",
    "StormGuard",
    "System",
    "SystemDevices",
    "converter",
]

_LOGGER = logging.getLogger(__name__)

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


# -- configuration ---------------------------------------------------------------------


@attrs.frozen
class BatterySettings:
    """``GET /systems/config/{id}/battery_settings``."""

    system_id: int
    battery_mode: BatteryMode | None = None
    reserve_soc: int | None = None
    energy_independence: Flag | None = None
    charge_from_grid: Flag | None = None
    battery_shutdown_level: int | None = None


@attrs.frozen
class StormGuard:
    """``GET /systems/config/{id}/storm_guard``: whether Storm Guard is on, and any alert."""

    system_id: int | None = None
    storm_guard_status: Flag | None = None
    storm_alert: Flag | None = None


@attrs.frozen
class GridStatus:
    """``GET /systems/config/{id}/grid_status``."""

    system_id: int
    grid_state: GridState = GridState.UNKNOWN
    last_report_date: datetime | None = None


@attrs.frozen
class LoadCircuit:
    """One load-control circuit (``NC1``...); essential times are seconds after midnight."""

    name: str
    load_name: str | None = None
    owner_can_override: Flag | None = None
    mode: LoadControlMode | None = None
    soc_low: int | None = None
    soc_high: int | None = None
    status: str | None = None
    essential_start_time: int | None = None
    essential_end_time: int | None = None


@attrs.frozen
class LoadControl:
    """``GET /systems/config/{id}/load_control``."""

    system_id: int | None = None
    load_control_data: tuple[LoadCircuit, ...] = ()


# -- telemetry ---------------------------------------------------------------------------


@attrs.frozen
class EnergyReading:
    """Energy over one interval, in Wh, and how many devices it covers (battery only)."""

    enwh: int
    devices_reporting: int | None = None


@attrs.frozen
class SocReading:
    """State of charge at the interval's end, in percent."""

    percent: int | None = None
    devices_reporting: int | None = None


@attrs.frozen
class BatteryInterval:
    """One system-level battery interval, labelled by its end."""

    end_at: datetime
    charge: EnergyReading
    discharge: EnergyReading
    soc: SocReading

    @property
    def devices_reporting(self) -> int | None:
        """The fewest devices any of the readings covers (``None`` when not reported)."""
        counts = [
            c
            for c in (
                self.charge.devices_reporting,
                self.discharge.devices_reporting,
                self.soc.devices_reporting,
            )
            if c is not None
        ]
        return min(counts) if counts else None


@attrs.frozen
class BatteryTelemetry:
    """``GET /systems/{id}/telemetry/battery``.

    ``start_at``/``end_at`` are set when the request used ``start_at``; ``start_date``/
    ``end_date`` when it used ``start_date`` (the API echoes whichever was sent).
    """

    system_id: int
    granularity: Granularity | None = None
    total_devices: int | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    start_date: date | None = None
    end_date: date | None = None
    intervals: tuple[BatteryInterval, ...] = ()
    last_reported_aggregate_soc: Percent | None = None


@attrs.frozen
class EnchargeInterval:
    """One interval of a single Encharge."""

    end_at: datetime
    charge: EnergyReading
    discharge: EnergyReading
    soc: SocReading


@attrs.frozen
class EnchargeTelemetry:
    """``GET /systems/{id}/devices/encharges/{serial_no}/telemetry``."""

    system_id: int
    serial_number: str
    granularity: Granularity | None = None
    total_devices: int | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    start_date: date | None = None
    end_date: date | None = None
    intervals: tuple[EnchargeInterval, ...] = ()
    last_reported_time: datetime | None = None
    last_reported_soc: Percent | None = None


@attrs.frozen
class LifetimeMeta:
    """Reporting status of a system."""

    status: str | None = None
    last_report_at: datetime | None = None
    last_energy_at: datetime | None = None
    operational_at: datetime | None = None


@attrs.frozen
class LifetimeDay:
    """One day of :class:`BatteryLifetime`, zipped for convenience."""

    date: date
    charge_wh: int
    discharge_wh: int


@attrs.frozen
class BatteryLifetime:
    """``GET /systems/{id}/battery_lifetime``: daily charge and discharge in Wh."""

    system_id: int
    start_date: date
    charge: tuple[int, ...] = ()
    discharge: tuple[int, ...] = ()
    meta: LifetimeMeta | None = None

    @property
    def days(self) -> tuple[LifetimeDay, ...]:
        """``(date, charge_wh, discharge_wh)`` per day, from ``start_date`` on."""
        return tuple(
            LifetimeDay(self.start_date + timedelta(days=i), c, d)
            for i, (c, d) in enumerate(zip(self.charge, self.discharge, strict=False))
        )


# -- discovery -------------------------------------------------------------------------


@attrs.frozen
class Address:
    """A system's address as the API reports it."""

    city: str | None = None
    state: str | None = None
    country: str | None = None
    postal_code: str | None = None


@attrs.frozen
class System:
    """One system of ``GET /systems``."""

    system_id: int
    name: str | None = None
    timezone: str | None = None
    address: Address | None = None
    connection_type: str | None = None
    status: str | None = None
    last_report_at: datetime | None = None
    last_energy_at: datetime | None = None
    operational_at: datetime | None = None
    reference: str | None = None


@attrs.frozen
class Device:
    """One device of ``GET /systems/{id}/devices``."""

    serial_number: str
    id: int | None = None
    name: str | None = None
    sku: str | None = None
    part_number: str | None = None
    status: str | None = None
    active: bool | None = None
    last_report_at: datetime | None = None
    product_name: str | None = None


@attrs.frozen
class DeviceGroups:
    """The device groups of a system; only active devices are listed by the API."""

    micros: tuple[Device, ...] = ()
    meters: tuple[Device, ...] = ()
    gateways: tuple[Device, ...] = ()
    q_relays: tuple[Device, ...] = ()
    acbs: tuple[Device, ...] = ()
    encharges: tuple[Device, ...] = ()
    enpowers: tuple[Device, ...] = ()
    ev_chargers: tuple[Device, ...] = ()
    heat_pump: tuple[Device, ...] = ()
    iq_collars: tuple[Device, ...] = ()


@attrs.frozen
class SystemDevices:
    """``GET /systems/{id}/devices``."""

    system_id: int
    total_devices: int | None = None
    devices: DeviceGroups = DeviceGroups()

    @property
    def encharge_serials(self) -> tuple[str, ...]:
        """Serial numbers of the system's Encharges, for per-Encharge telemetry."""
        return tuple(d.serial_number for d in self.devices.encharges)


# -- the converter ---------------------------------------------------------------------


def _structure_datetime(value: Any, _type: Any) -> datetime:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a timestamp")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text), UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise TypeError(f"not a timestamp: {value!r}")


def _structure_date(value: Any, _type: Any) -> date:
    if isinstance(value, str):
        return date.fromisoformat(value.strip()[:10])
    raise TypeError(f"not a date: {value!r}")


def _structure_flag(value: Any, _type: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text.startswith(("enabled", "true", "yes", "on")) or text == "1":
            return True
        if text.startswith(("disabled", "false", "no", "off")) or text == "0":
            return False
    raise ValueError(f"not an enabled/disabled flag: {value!r}")


def _structure_percent(value: Any, _type: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a percentage")
    if isinstance(value, int | float):
        return round(value)
    if isinstance(value, str):
        return round(float(value.strip().rstrip("%").strip()))
    raise TypeError(f"not a percentage: {value!r}")


def _structure_int(value: Any, _type: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("a boolean is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return round(value)
    if isinstance(value, str):
        return round(float(value))
    raise TypeError(f"not an integer: {value!r}")


def _structure_devices(value: Any, _type: Any) -> DeviceGroups:
    # Some device groups are objects rather than lists on some sites; keep the lists only.
    groups = {}
    if isinstance(value, dict):
        for field in attrs.fields(DeviceGroups):
            items = value.get(field.name)
            if isinstance(items, list):
                groups[field.name] = tuple(
                    converter.structure(item, Device)
                    for item in items
                    if isinstance(item, dict) and item.get("serial_number")
                )
    return DeviceGroups(**groups)


# Readings are immutable and repeat a lot (zero energy at night, SoC 0..100), so they are
# shared.  Bounded: cleared whole when full, which costs only a few re-creations.
_READINGS: dict[tuple[Any, ...], Any] = {}
_READINGS_MAX = 65_536


def _intervals_hook(cls: type[Any]) -> Any:
    # The hot path of every telemetry call (672 intervals a week): one tight loop instead of
    # the generated per-item dispatch; it accepts the same shapes as the generated hook.
    fields = attrs.fields(cls)
    # Instances are filled through their slot descriptors, skipping the frozen __init__
    # (three times slower); that is only sound while the fields have nothing to run.
    assert [f.name for f in fields] == ["end_at", "charge", "discharge", "soc"]
    assert all(f.validator is None and f.converter is None for f in fields)
    set_end_at = cls.__dict__["end_at"].__set__
    set_charge = cls.__dict__["charge"].__set__
    set_discharge = cls.__dict__["discharge"].__set__
    set_soc = cls.__dict__["soc"].__set__
    new = object.__new__
    step = timedelta(seconds=_INTERVAL_S)

    def structure(value: Any, _type: Any) -> tuple[Any, ...]:
        try:
            return build(value, True)
        except (KeyError, TypeError):
            # Some reading lacks a field (Encharge intervals carry no devices_reporting)
            # or is null: redo the whole list the lenient way.
            return build(value, False)

    def build(value: Any, strict: bool) -> tuple[Any, ...]:
        cache = _READINGS
        fromtimestamp = datetime.fromtimestamp
        result: list[Any] = []
        append = result.append
        prev_ts: int | None = None
        prev_dt = _EPOCH
        for item in value:
            end_at = item["end_at"]
            if type(end_at) is int:
                # Consecutive intervals are 900 s apart: adding is cheaper than converting.
                end_dt = (
                    prev_dt + step
                    if end_at - _INTERVAL_S == prev_ts
                    else fromtimestamp(end_at, UTC)
                )
                prev_ts, prev_dt = end_at, end_dt
            else:
                end_dt = _structure_datetime(end_at, datetime)
            if strict:
                # Subscripts are cheaper than .get(); a missing key raises KeyError.
                charge = item["charge"]
                discharge = item["discharge"]
                soc = item["soc"]
                key_c = (EnergyReading, charge["enwh"], charge["devices_reporting"])
                key_d = (EnergyReading, discharge["enwh"], discharge["devices_reporting"])
                key_s = (SocReading, soc["percent"], soc["devices_reporting"])
            else:
                charge = item.get("charge") or _EMPTY
                discharge = item.get("discharge") or _EMPTY
                soc = item.get("soc") or _EMPTY
                key_c = (EnergyReading, charge.get("enwh"), charge.get("devices_reporting"))
                key_d = (
                    EnergyReading,
                    discharge.get("enwh"),
                    discharge.get("devices_reporting"),
                )
                key_s = (SocReading, soc.get("percent"), soc.get("devices_reporting"))
            interval = new(cls)
            set_end_at(interval, end_dt)
            set_charge(interval, cache.get(key_c) or _new_reading(key_c))
            set_discharge(interval, cache.get(key_d) or _new_reading(key_d))
            set_soc(interval, cache.get(key_s) or _new_reading(key_s))
            append(interval)
        return tuple(result)

    return structure


_INTERVAL_S = 900
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EMPTY: dict[str, Any] = {}


def _new_reading(key: tuple[Any, ...]) -> Any:
    kind, value, devices = key
    if len(_READINGS) >= _READINGS_MAX:
        _READINGS.clear()
    reading: EnergyReading | SocReading
    if kind is EnergyReading:
        reading = EnergyReading(_int_or_zero(value), _opt_int(devices))
    else:
        reading = SocReading(_opt_int(value), _opt_int(devices))
    _READINGS[key] = reading
    return reading


def _int_or_zero(value: Any) -> int:
    if type(value) is int:
        return value
    return 0 if value is None else _structure_int(value, int)


def _opt_int(value: Any) -> int | None:
    if value is None or type(value) is int:
        return value
    return _structure_int(value, int)


def _unstructure_time(value: time) -> int:
    return value.hour * 3600 + value.minute * 60 + value.second


def _lenient(parse: Any) -> Any:
    # A vocabulary the API grows (a new battery profile) must not make the whole answer
    # unreadable: the field becomes None, and the log says what was seen.
    def structure(value: Any, _type: Any) -> Any:
        try:
            return parse(str(value))
        except ValueError:
            _LOGGER.warning("unknown %s %r in a response; read as None", _type.__name__, value)
            return None

    return structure


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=False)
    conv.register_structure_hook(datetime, _structure_datetime)
    conv.register_structure_hook(date, _structure_date)
    conv.register_structure_hook(int, _structure_int)
    # bool subclasses int: without its own hook it would get the int hook and refuse
    # every real boolean (Device.active is ``true`` in each /devices answer).
    conv.register_structure_hook(bool, _structure_flag)
    conv.register_structure_hook(Flag, _structure_flag)
    conv.register_structure_hook(Percent, _structure_percent)
    conv.register_structure_hook(BatteryMode, _lenient(BatteryMode.parse))
    conv.register_structure_hook(GridState, lambda v, _t: GridState.parse(str(v)))
    conv.register_structure_hook(LoadControlMode, _lenient(LoadControlMode.parse))
    conv.register_structure_hook(DeviceGroups, _structure_devices)
    battery_intervals: Any = tuple[BatteryInterval, ...]
    encharge_intervals: Any = tuple[EnchargeInterval, ...]
    conv.register_structure_hook_func(
        lambda t: t == battery_intervals, _intervals_hook(BatteryInterval)
    )
    conv.register_structure_hook_func(
        lambda t: t == encharge_intervals, _intervals_hook(EnchargeInterval)
    )
    conv.register_unstructure_hook(datetime, lambda v: int(v.timestamp()))
    conv.register_unstructure_hook(date, lambda v: v.isoformat())
    conv.register_unstructure_hook(time, _unstructure_time)
    return conv


#: The one converter for JSON in and out.
converter = _make_converter()
