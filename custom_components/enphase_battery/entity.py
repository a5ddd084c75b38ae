"""Device info and unique ids: a device per system, one per Encharge under it.

Unique ids are built from the API's own identifiers (the system id, the Encharge serial
number) and the entity's key, so they survive restarts, re-authentication and a new
config entry for the same account.
"""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceInfo

from .const import DOMAIN
from .runtime import EnchargeInfo, SystemInfo


def system_device(system: SystemInfo) -> DeviceInfo:
    """The system's device (the Encharges hang under it)."""
    return DeviceInfo(
        identifiers={(DOMAIN, str(system.system_id))},
        name=system.name,
        manufacturer="Enphase Energy",
        model="IQ Battery system",
        serial_number=str(system.system_id),
    )


def encharge_device(system: SystemInfo, encharge: EnchargeInfo) -> DeviceInfo:
    """One Encharge's device."""
    return DeviceInfo(
        identifiers={(DOMAIN, encharge.serial)},
        name=encharge.name or f"Encharge {encharge.serial}",
        manufacturer="Enphase Energy",
        model=encharge.product_name or "IQ Battery",
        model_id=encharge.sku,
        serial_number=encharge.serial,
        via_device=(DOMAIN, str(system.system_id)),
    )


def system_unique_id(system: SystemInfo, key: str) -> str:
    """``<system id>_<key>``."""
    return f"{system.system_id}_{key}"


def encharge_unique_id(encharge: EnchargeInfo, key: str) -> str:
    """``<serial>_<key>``."""
    return f"{encharge.serial}_{key}"
