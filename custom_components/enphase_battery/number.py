"""The reserve state of charge, a number per system (configuration access)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.components.number import NumberEntity, NumberMode
from homeassistant.const import PERCENTAGE
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .const import Access
from .control import SettingsEntity

if TYPE_CHECKING:
    from . import EnphaseConfigEntry


class ReserveNumber(SettingsEntity, NumberEntity):
    """The SoC kept for outages (the API refuses one below the very-low-SoC level)."""

    _attr_native_min_value = 0
    _attr_native_max_value = 100
    _attr_native_step = 1
    _attr_native_unit_of_measurement = PERCENTAGE
    _attr_mode = NumberMode.SLIDER

    @property
    def native_value(self) -> float | None:
        settings = self._settings
        return None if settings is None else settings.battery.reserve_soc

    async def async_set_native_value(self, value: float) -> None:
        answer = await self._write(
            self.coordinator.client.update_system_battery_settings(
                self._system_id, reserve_soc=round(value)
            )
        )
        self.coordinator.replace(self._system_id, battery=answer)


async def async_setup_entry(
    hass: HomeAssistant, entry: EnphaseConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    """The reserve of each system, when the configuration routes are allowed."""
    runtime = entry.runtime_data
    if runtime.settings is None or Access.CONFIG not in runtime.access.allowed:
        return
    async_add_entities(
        ReserveNumber(runtime.settings, system, "reserve_soc")
        for system in runtime.systems.values()
    )
