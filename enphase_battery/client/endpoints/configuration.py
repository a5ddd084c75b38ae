"""Configuration: battery settings, Storm Guard, grid status and load control (reads and writes)."""

from __future__ import annotations

from typing import Any

from enphase_battery.client.endpoints.base import EndpointBase
from enphase_battery.exceptions import InvalidRequestError
from enphase_battery.models import (
    BatteryMode,
    BatterySettings,
    GridStatus,
    LoadControl,
    LoadControlMode,
    StormGuard,
    validation,
)

__all__ = ["ConfigurationEndpoints"]


class ConfigurationEndpoints(EndpointBase):
    """The ``/systems/config/{id}/...`` operations (Megawatt/Partner plans)."""

    async def get_system_battery_settings(self, system_id: int) -> BatterySettings:
        """Battery profile, reserve and energy independence (Megawatt/Partner plans)."""
        return await self._call("get_system_battery_settings", BatterySettings, system_id)

    async def update_system_battery_settings(
        self,
        system_id: int,
        *,
        battery_mode: BatteryMode | str | None = None,
        reserve_soc: int | None = None,
        energy_independence: bool | None = None,
    ) -> BatterySettings:
        """Change any of the profile, the backup reserve (0-100 %) and energy independence.

        Only the arguments given are sent (a partial update); at least one is required.
        """
        body: dict[str, Any] = {}
        if battery_mode is not None:
            body["battery_mode"] = validation.battery_mode(battery_mode).value
        if reserve_soc is not None:
            body["reserve_soc"] = validation.percent("reserve_soc", reserve_soc)
        if energy_independence is not None:
            if not isinstance(energy_independence, bool):
                raise InvalidRequestError("energy_independence must be a bool")
            body["energy_independence"] = "enabled" if energy_independence else "disabled"
        if not body:
            raise InvalidRequestError(
                "nothing to update: give battery_mode, reserve_soc or energy_independence"
            )
        return await self._call(
            "update_system_battery_settings",
            BatterySettings,
            system_id,
            body=body,
            full_state=len(body) == 3,
        )

    async def get_system_storm_guard(self, system_id: int) -> StormGuard:
        """Whether Storm Guard is enabled and whether a storm alert is active."""
        return await self._call("get_system_storm_guard", StormGuard, system_id)

    async def update_system_storm_guard(self, system_id: int, enabled: bool) -> StormGuard:
        """Turn Storm Guard on or off."""
        if not isinstance(enabled, bool):
            raise InvalidRequestError(f"enabled must be a bool, got {enabled!r}")
        body = {"storm_guard_status": "enabled" if enabled else "disabled"}
        return await self._call(
            "update_system_storm_guard", StormGuard, system_id, body=body, full_state=True
        )

    async def get_system_grid_status(self, system_id: int) -> GridStatus:
        """Whether the site is on or off grid."""
        return await self._call("get_system_grid_status", GridStatus, system_id)

    async def get_system_load_control(self, system_id: int) -> LoadControl:
        """The load-control circuits and their settings."""
        return await self._call("get_system_load_control", LoadControl, system_id)

    async def update_system_load_control(
        self,
        system_id: int,
        *,
        name: str,
        load_name: str | None = None,
        mode: LoadControlMode | str | None = None,
        soc_low: int | None = None,
        essential_start_time: int | Any | None = None,
        essential_end_time: int | Any | None = None,
    ) -> LoadControl:
        """Change one load-control circuit, named by ``name`` (e.g. ``"NC1"``).

        ``soc_low`` is 10-90 %; essential times are ``datetime.time`` values or seconds
        after midnight.
        """
        body: dict[str, Any] = {"name": validation.circuit_name(name)}
        if load_name is not None:
            if not isinstance(load_name, str):
                raise InvalidRequestError("load_name must be a str")
            body["load_name"] = load_name
        if mode is not None:
            body["mode"] = validation.load_control_mode(mode).value
        if soc_low is not None:
            body["soc_low"] = validation.percent("soc_low", soc_low, 10, 90)
        if essential_start_time is not None:
            body["essential_start_time"] = validation.seconds_after_midnight(
                "essential_start_time", essential_start_time
            )
        if essential_end_time is not None:
            body["essential_end_time"] = validation.seconds_after_midnight(
                "essential_end_time", essential_end_time
            )
        # Every field of the circuit given: sending it twice sets the same state.
        return await self._call(
            "update_system_load_control",
            LoadControl,
            system_id,
            body=body,
            full_state=len(body) == 6,
        )
