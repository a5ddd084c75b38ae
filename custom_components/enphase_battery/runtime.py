"""What a loaded entry holds (``entry.runtime_data``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from enphase_battery import EnphaseClient
from enphase_battery.models import SystemDevices

if TYPE_CHECKING:
    from .access import AccessReport
    from .coordinator import NowCoordinator, SettingsCoordinator
    from .history import HistoryCoordinator, SystemHistory
    from .quota import KeyQuota
    from .store import EntryStore


@attrs.frozen
class EnchargeInfo:
    """One Encharge of a system."""

    serial: str
    device_id: int | None
    name: str | None
    product_name: str | None
    sku: str | None


@attrs.frozen
class SystemInfo:
    """One system of the entry and its Encharges."""

    system_id: int
    name: str
    encharges: tuple[EnchargeInfo, ...]

    @classmethod
    def from_devices(cls, system_id: int, name: str, devices: SystemDevices) -> SystemInfo:
        """From ``get_system_devices``."""
        return cls(
            system_id,
            name,
            tuple(
                EnchargeInfo(d.serial_number, d.id, d.name, d.product_name, d.sku)
                for d in devices.devices.encharges
            ),
        )


@attrs.define
class EnphaseRuntime:
    """The entry's client, coordinators and pollers."""

    client: EnphaseClient
    quota: KeyQuota
    store: EntryStore
    systems: dict[int, SystemInfo]
    access: AccessReport
    now: NowCoordinator
    settings: SettingsCoordinator | None
    history: HistoryCoordinator
    histories: dict[int, SystemHistory] = attrs.field(factory=dict)
