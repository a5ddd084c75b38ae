"""The battery profile, a select per system (configuration access: Megawatt and up)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.components.select import SelectEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from enphase_battery import BatteryMode

from .const import Access
from .control import SettingsEntity

if TYPE_CHECKING:
    from . import EnphaseConfigEntry

#: Option (translated in strings.json) -> the API's profile.
PROFILES: dict[str, BatteryMode] = {
    "self_consumption": BatteryMode.SELF_CONSUMPTION,
    "savings": BatteryMode.SAVINGS,
    "full_backup": BatteryMode.FULL_BACKUP,
}


class ProfileSelect(SettingsEntity, SelectEntity):
    """Self-consumption, Savings or Full Backup."""

    _attr_options = list(PROFILES)

    @property
    def current_option(self) -> str | None:
        settings = self._settings
        mode = None if settings is None else settings.battery.battery_mode
        return next((option for option, value in PROFILES.items() if value is mode), None)

    async def async_select_option(self, option: str) -> None:
        answer = await self._write(
            self.coordinator.client.update_system_battery_settings(
                self._system_id, battery_mode=PROFILES[option]
            )
        )
        self.coordinator.replace(self._system_id, battery=answer)


async def async_setup_entry(
    hass: HomeAssistant, entry: EnphaseConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    """The profile of each system, when the configuration routes are allowed."""
    runtime = entry.runtime_data
    if runtime.settings is None or Access.CONFIG not in runtime.access.allowed:
        return
    async_add_entities(
        ProfileSelect(runtime.settings, system, "profile") for system in runtime.systems.values()
    )
