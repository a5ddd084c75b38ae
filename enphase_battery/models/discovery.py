"""Models of the discovery operations: systems and their devices."""

from __future__ import annotations

from datetime import datetime

import attrs

__all__ = ["Address", "Device", "DeviceGroups", "System", "SystemDevices"]


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
