"""Models of battery telemetry, per-Encharge telemetry and battery lifetime."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import attrs

from enphase_battery.models.vocabulary import Granularity, Percent

__all__ = [
    "BatteryInterval",
    "BatteryLifetime",
    "BatteryTelemetry",
    "EnchargeInterval",
    "EnchargeTelemetry",
    "EnergyReading",
    "LifetimeDay",
    "LifetimeMeta",
    "SocReading",
]


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
        charge = self.charge.devices_reporting
        discharge = self.discharge.devices_reporting
        soc = self.soc.devices_reporting
        if charge == discharge == soc:
            return charge  # the usual answer: one count for all three (or none at all)
        counts = [c for c in (charge, discharge, soc) if c is not None]
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
