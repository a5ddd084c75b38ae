"""What the configuration entities (switch, select, number) share: the coordinator, the
system's device, and a write that reports the API's refusal to the user."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from enphase_battery import AuthenticationError, EnphaseError

from .coordinator import SettingsCoordinator, SystemSettings
from .entity import system_device, system_unique_id
from .runtime import SystemInfo

_T = TypeVar("_T")


class SettingsEntity(CoordinatorEntity[SettingsCoordinator]):
    """An entity on one system's configuration."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: SettingsCoordinator, system: SystemInfo, key: str) -> None:
        super().__init__(coordinator)
        self._system_id = system.system_id
        self._attr_translation_key = key
        self._attr_unique_id = system_unique_id(system, key)
        self._attr_device_info = system_device(system)

    @property
    def _settings(self) -> SystemSettings | None:
        return (self.coordinator.data or {}).get(self._system_id)

    @property
    def available(self) -> bool:
        return super().available and self._settings is not None

    async def _write(self, call: Awaitable[_T]) -> _T:
        """Await a write; the API's refusal becomes a message in the UI."""
        try:
            return await call
        except AuthenticationError as err:
            # The sign-in is dead: ask for a new one (a repair), and say so here.
            entry = self.coordinator.config_entry
            if entry is not None:
                entry.async_start_reauth(self.hass)
            raise HomeAssistantError(f"Enphase needs a new sign-in: {err}") from err
        except EnphaseError as err:
            raise HomeAssistantError(f"Enphase refused the change: {err}") from err
