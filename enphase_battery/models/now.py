"""Models of the "now" answers: latest telemetry, lifetime meter counters, the summary.

Shapes are second-hand (fact sheet §7); fields the API may leave out are optional, and
``latest_telemetry`` values are ``None`` when a device last reported over 7 days ago.
"""

from __future__ import annotations

from datetime import date, datetime

import attrs

from .vocabulary import BatteryMode

__all__ = [
    "BATTERY_POWER_DISCHARGE_POSITIVE",
    "LatestDevice",
    "LatestDeviceGroups",
    "LatestTelemetry",
    "MeterReading",
    "StorageMeterReadings",
    "SystemSummary",
]

#: [inferred] The sign of ``battery_power`` / Encharge ``power``: positive while the
#: battery discharges (it feeds the house), negative while it charges, as Enphase's own
#: live status shows storage power.  The one place to flip should the API disagree.
BATTERY_POWER_DISCHARGE_POSITIVE = True


def _discharge_w(power_w: int | None) -> int | None:
    """Signed battery power as "W out of the battery" whatever the API's convention."""
    if power_w is None:
        return None
    return power_w if BATTERY_POWER_DISCHARGE_POSITIVE else -power_w


@attrs.frozen
class LatestDevice:
    """One device of ``latest_telemetry`` (an Encharge, a meter...)."""

    id: int | None = None
    name: str | None = None
    channel: str | None = None
    last_report_at: datetime | None = None
    #: Watts, signed; for an Encharge see :data:`BATTERY_POWER_DISCHARGE_POSITIVE`.
    power: int | None = None
    #: The battery's operational mode as the API spells it (vocabulary not documented).
    operational_mode: str | None = None


@attrs.frozen
class LatestDeviceGroups:
    """The device groups of ``latest_telemetry`` the SDK reads."""

    encharges: tuple[LatestDevice, ...] = ()
    meters: tuple[LatestDevice, ...] = ()


@attrs.frozen
class LatestTelemetry:
    """``GET /systems/{id}/latest_telemetry`` (Watt plan and up): power now, per device."""

    system_id: int
    devices: LatestDeviceGroups = LatestDeviceGroups()

    @property
    def battery_power(self) -> int | None:
        """Sum of the Encharges' power in W (signed as the API sends it), ``None`` if none."""
        powers = [d.power for d in self.devices.encharges if d.power is not None]
        return sum(powers) if powers else None

    @property
    def battery_discharge_w(self) -> int | None:
        """Battery power as W leaving the batteries (negative while charging)."""
        return _discharge_w(self.battery_power)

    @property
    def battery_mode(self) -> BatteryMode | None:
        """The first Encharge's operational mode read as a battery profile, if it is one."""
        for device in self.devices.encharges:
            if device.operational_mode:
                try:
                    return BatteryMode.parse(device.operational_mode)
                except ValueError:
                    return None
        return None

    @property
    def last_report_at(self) -> datetime | None:
        """The newest ``last_report_at`` of any Encharge."""
        times = [d.last_report_at for d in self.devices.encharges if d.last_report_at]
        return max(times) if times else None


@attrs.frozen
class MeterReading:
    """One battery's lifetime counters (Wh) at ``read_at``."""

    serial_num: str
    value_charged: int | None = None
    value_discharged: int | None = None
    read_at: datetime | None = None


@attrs.frozen
class StorageMeterReadings:
    """``GET /systems/{id}/storage_meter_readings``: lifetime Wh counters per battery."""

    system_id: int
    meter_readings: tuple[MeterReading, ...] = ()

    def by_serial(self) -> dict[str, MeterReading]:
        """The readings keyed by battery serial number."""
        return {r.serial_num: r for r in self.meter_readings}


@attrs.frozen
class SystemSummary:
    """``GET /systems/{id}/summary``, the fields the battery side uses.

    ``battery_charge_w`` / ``battery_discharge_w`` are read as the batteries' rated
    charge and discharge power and ``battery_capacity_wh`` as their usable capacity
    [inferred: the names, not documented values].
    """

    system_id: int
    summary_date: date | None = None
    status: str | None = None
    battery_charge_w: int | None = None
    battery_discharge_w: int | None = None
    battery_capacity_wh: int | None = None
    last_interval_end_at: datetime | None = None
    last_report_at: datetime | None = None
    operational_at: datetime | None = None
    size_w: int | None = None
    current_power: int | None = None
    energy_today: int | None = None
    energy_lifetime: int | None = None
