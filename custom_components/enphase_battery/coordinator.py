"""The polling coordinators: power now, and the configuration (Megawatt and up).

Their update intervals come from the API key's quota (:mod:`.quota`): on the free Watt
plan the power-now coordinator spends the coordinators' share of the month evenly (one
request every couple of hours for one system), on the paid plans it polls every minute.
The SoC and energy come from the telemetry poller instead (:mod:`.history`), at no extra
request.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import attrs
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from enphase_battery import (
    AuthenticationError,
    BatterySettings,
    EnphaseClient,
    EnphaseError,
    LatestTelemetry,
)
from enphase_battery.models import GridStatus, StormGuard

_LOGGER = logging.getLogger(__name__)


class NowCoordinator(DataUpdateCoordinator[dict[int, LatestTelemetry]]):
    """``latest_telemetry`` of each system: battery power and direction (1 request each)."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        client: EnphaseClient,
        system_ids: tuple[int, ...],
        update_interval: timedelta,
    ) -> None:
        super().__init__(
            hass,
            _LOGGER,
            config_entry=entry,
            name="Enphase battery power",
            update_interval=update_interval,
        )
        self.client = client
        self.system_ids = system_ids

    async def _async_update_data(self) -> dict[int, LatestTelemetry]:
        try:
            return {sid: await self.client.get_latest_telemetry(sid) for sid in self.system_ids}
        except AuthenticationError as err:
            raise ConfigEntryAuthFailed(str(err)) from err
        except EnphaseError as err:
            raise UpdateFailed(str(err)) from err


@attrs.frozen
class SystemSettings:
    """One system's configuration: profile and reserve, Storm Guard, grid state."""

    battery: BatterySettings
    storm_guard: StormGuard
    grid: GridStatus


class SettingsCoordinator(DataUpdateCoordinator[dict[int, SystemSettings]]):
    """The configuration routes of each system (3 requests each; Megawatt and up)."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        client: EnphaseClient,
        system_ids: tuple[int, ...],
        update_interval: timedelta,
    ) -> None:
        super().__init__(
            hass,
            _LOGGER,
            config_entry=entry,
            name="Enphase battery settings",
            update_interval=update_interval,
        )
        self.client = client
        self.system_ids = system_ids

    async def _async_update_data(self) -> dict[int, SystemSettings]:
        try:
            return {sid: await self._read(sid) for sid in self.system_ids}
        except AuthenticationError as err:
            raise ConfigEntryAuthFailed(str(err)) from err
        except EnphaseError as err:
            raise UpdateFailed(str(err)) from err

    async def _read(self, system_id: int) -> SystemSettings:
        client = self.client
        return SystemSettings(
            battery=await client.get_system_battery_settings(system_id),
            storm_guard=await client.get_system_storm_guard(system_id),
            grid=await client.get_system_grid_status(system_id),
        )

    def replace(self, system_id: int, **changes: object) -> None:
        """Show a write's answer at once, without another read."""
        data = dict(self.data or {})
        current = data.get(system_id)
        if current is not None:
            data[system_id] = attrs.evolve(current, **changes)  # type: ignore[arg-type]
            self.async_set_updated_data(data)
