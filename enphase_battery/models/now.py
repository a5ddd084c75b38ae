"""Models of the "now" answers: latest telemetry, lifetime meter counters, the summary.

Shapes follow the official spec (fact sheet §8); fields the API may leave out are
optional, and ``latest_telemetry`` values are ``None`` when a device last reported over
7 days ago.  An Encharge's ``power`` has no documented sign (the official examples
contradict each other): the direction comes from its ``operational_mode``
(:class:`~enphase_battery.models.vocabulary.BatteryState`), the magnitude from ``power``.
"""

from __future__ import annotations

from datetime import date, datetime

import attrs

from enphase_battery.models.vocabulary import BatteryState

__all__ = [
    "LatestDevice",
    "LatestDeviceGroups",
    "LatestTelemetry",
    "MeterReading",
    "StorageMeterReadings",
    "SystemSummary",
]


@attrs.frozen
class LatestDevice:
    """One device of ``latest_telemetry`` (an Encharge, a meter...)."""

    id: int | None = None
    name: str | None = None
    channel: str | None = None
    last_report_at: datetime | None = None
    #: Watts as the API sends them; for an Encharge the sign is undocumented (read
    #: :attr:`discharge_w` instead).
    power: int | None = None
    #: An Encharge's state (``Idle``, ``Charging``, ``Discharging``; anything else
    #: :attr:`BatteryState.UNKNOWN`); ``None`` for meters and stale devices.
    operational_mode: BatteryState | None = None

    @property
    def discharge_w(self) -> int | None:
        """W leaving this battery (negative while charging, 0 idle), ``None`` if unknown."""
        if self.operational_mode is None:
            return None
        return self.operational_mode.signed_discharge_w(self.power)


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
    def battery_discharge_w(self) -> int | None:
        """W leaving the batteries (negative while charging), summed over the Encharges
        whose state and power are known; ``None`` if none is."""
        powers = [d.discharge_w for d in self.devices.encharges]
        known = [w for w in powers if w is not None]
        return sum(known) if known else None

    @property
    def battery_state(self) -> BatteryState | None:
        """The batteries' state: the Encharges' common state, else the direction of
        :attr:`battery_discharge_w`; ``None`` when no Encharge says."""
        states = {d.operational_mode for d in self.devices.encharges if d.operational_mode}
        if len(states) == 1:
            return states.pop()
        out_w = self.battery_discharge_w
        if out_w is None:
            return BatteryState.UNKNOWN if states else None
        if out_w > 0:
            return BatteryState.DISCHARGING
        return BatteryState.CHARGING if out_w < 0 else BatteryState.IDLE

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
