"""Storm Guard, a switch per system (configuration access: Megawatt and up)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.components.switch import SwitchEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .const import Access
from .control import SettingsEntity

if TYPE_CHECKING:
    from . import EnphaseConfigEntry


class StormGuardSwitch(SettingsEntity, SwitchEntity):
    """Storm Guard: charge to full ahead of a severe-weather alert."""

    @property
    def is_on(self) -> bool | None:
        settings = self._settings
        return None if settings is None else settings.storm_guard.storm_guard_status

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        settings = self._settings
        return None if settings is None else {"storm_alert": settings.storm_guard.storm_alert}

    async def async_turn_on(self, **kwargs: Any) -> None:
        await self._set(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        await self._set(False)

    async def _set(self, enabled: bool) -> None:
        answer = await self._write(
            self.coordinator.client.update_system_storm_guard(self._system_id, enabled)
        )
        self.coordinator.replace(self._system_id, storm_guard=answer)


async def async_setup_entry(
    hass: HomeAssistant, entry: EnphaseConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    """Storm Guard for each system, when the configuration routes are allowed."""
    runtime = entry.runtime_data
    if runtime.settings is None or Access.CONFIG not in runtime.access.allowed:
        return
    async_add_entities(
        StormGuardSwitch(runtime.settings, system, "storm_guard")
        for system in runtime.systems.values()
    )
