"""Configuration: battery settings, Storm Guard, grid status and load control (reads and writes).

Each write's body and checks are in :mod:`.writes`; ``confirm=True`` waits for the change
through :mod:`.confirmation`.
"""

from __future__ import annotations

from typing import Any, Literal, overload

from enphase_battery.client.endpoints.base import EndpointBase
from enphase_battery.client.endpoints.confirmation import (
    DEFAULT_INTERVAL_S,
    DEFAULT_TIMEOUT_S,
    WaitBounds,
    send_write,
)
from enphase_battery.client.endpoints.writes import (
    battery_settings_write,
    load_control_write,
    storm_guard_write,
)
from enphase_battery.models import (
    BatteryMode,
    BatterySettings,
    GridStatus,
    LoadControl,
    LoadControlMode,
    StormGuard,
)
from enphase_battery.models.confirmation import WriteConfirmation

__all__ = ["ConfigurationEndpoints"]


class ConfigurationEndpoints(EndpointBase):
    """The ``/systems/config/{id}/...`` operations (Megawatt/Partner plans)."""

    async def get_system_battery_settings(self, system_id: int) -> BatterySettings:
        """Battery profile, reserve and energy independence (Megawatt/Partner plans)."""
        return await self._call("get_system_battery_settings", BatterySettings, system_id)

    @overload
    async def update_system_battery_settings(
        self,
        system_id: int,
        *,
        battery_mode: BatteryMode | str | None = ...,
        reserve_soc: int | None = ...,
        energy_independence: bool | None = ...,
        confirm: Literal[False] = ...,
    ) -> BatterySettings: ...

    @overload
    async def update_system_battery_settings(
        self,
        system_id: int,
        *,
        battery_mode: BatteryMode | str | None = ...,
        reserve_soc: int | None = ...,
        energy_independence: bool | None = ...,
        confirm: Literal[True],
        timeout_s: float = ...,
        interval_s: float = ...,
        settle_s: float = ...,
    ) -> WriteConfirmation[BatterySettings]: ...

    async def update_system_battery_settings(
        self,
        system_id: int,
        *,
        battery_mode: BatteryMode | str | None = None,
        reserve_soc: int | None = None,
        energy_independence: bool | None = None,
        confirm: bool = False,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        interval_s: float = DEFAULT_INTERVAL_S,
        settle_s: float = 0.0,
    ) -> BatterySettings | WriteConfirmation[BatterySettings]:
        """Change any of the profile, the backup reserve (0-100 %) and energy independence.

        Only the arguments given are sent (a partial update); at least one is required.
        Returns what the API answered; with ``confirm=True``, waits until
        ``battery_settings`` shows the change (see :meth:`wait_applied` for
        ``timeout_s``, ``interval_s`` and ``settle_s``) and returns a
        :class:`~enphase_battery.models.confirmation.WriteConfirmation` whose ``answer``
        is the API's answer.
        """
        write = battery_settings_write(
            battery_mode=battery_mode,
            reserve_soc=reserve_soc,
            energy_independence=energy_independence,
        )
        bounds = WaitBounds.checked(timeout_s, interval_s, settle_s) if confirm else None
        return await send_write(
            self,
            write,
            BatterySettings,
            system_id,
            bounds,
            lambda: self.get_system_battery_settings(system_id),
        )

    async def get_system_storm_guard(self, system_id: int) -> StormGuard:
        """Whether Storm Guard is enabled and whether a storm alert is active."""
        return await self._call("get_system_storm_guard", StormGuard, system_id)

    @overload
    async def update_system_storm_guard(
        self, system_id: int, enabled: bool, *, confirm: Literal[False] = ...
    ) -> StormGuard: ...

    @overload
    async def update_system_storm_guard(
        self,
        system_id: int,
        enabled: bool,
        *,
        confirm: Literal[True],
        timeout_s: float = ...,
        interval_s: float = ...,
        settle_s: float = ...,
    ) -> WriteConfirmation[StormGuard]: ...

    async def update_system_storm_guard(
        self,
        system_id: int,
        enabled: bool,
        *,
        confirm: bool = False,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        interval_s: float = DEFAULT_INTERVAL_S,
        settle_s: float = 0.0,
    ) -> StormGuard | WriteConfirmation[StormGuard]:
        """Turn Storm Guard on or off; ``confirm=True``: wait until ``storm_guard`` shows
        it (as :meth:`update_system_battery_settings` does)."""
        write = storm_guard_write(enabled=enabled)
        bounds = WaitBounds.checked(timeout_s, interval_s, settle_s) if confirm else None
        return await send_write(
            self,
            write,
            StormGuard,
            system_id,
            bounds,
            lambda: self.get_system_storm_guard(system_id),
        )

    async def get_system_grid_status(self, system_id: int) -> GridStatus:
        """Whether the site is on or off grid."""
        return await self._call("get_system_grid_status", GridStatus, system_id)

    async def get_system_load_control(self, system_id: int) -> LoadControl:
        """The load-control circuits and their settings."""
        return await self._call("get_system_load_control", LoadControl, system_id)

    @overload
    async def update_system_load_control(
        self,
        system_id: int,
        *,
        name: str,
        load_name: str | None = ...,
        mode: LoadControlMode | str | None = ...,
        soc_low: int | None = ...,
        essential_start_time: int | Any | None = ...,
        essential_end_time: int | Any | None = ...,
        confirm: Literal[False] = ...,
    ) -> LoadControl: ...

    @overload
    async def update_system_load_control(
        self,
        system_id: int,
        *,
        name: str,
        load_name: str | None = ...,
        mode: LoadControlMode | str | None = ...,
        soc_low: int | None = ...,
        essential_start_time: int | Any | None = ...,
        essential_end_time: int | Any | None = ...,
        confirm: Literal[True],
        timeout_s: float = ...,
        interval_s: float = ...,
        settle_s: float = ...,
    ) -> WriteConfirmation[LoadControl]: ...

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
        confirm: bool = False,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        interval_s: float = DEFAULT_INTERVAL_S,
        settle_s: float = 0.0,
    ) -> LoadControl | WriteConfirmation[LoadControl]:
        """Change one load-control circuit, named by ``name`` (e.g. ``"NC1"``).

        ``soc_low`` is 10-90 %; essential times are ``datetime.time`` values or seconds
        after midnight.  ``confirm=True``: wait until ``load_control`` shows the
        circuit's new fields (as :meth:`update_system_battery_settings` does).
        """
        write = load_control_write(
            name=name,
            load_name=load_name,
            mode=mode,
            soc_low=soc_low,
            essential_start_time=essential_start_time,
            essential_end_time=essential_end_time,
        )
        bounds = WaitBounds.checked(timeout_s, interval_s, settle_s) if confirm else None
        return await send_write(
            self,
            write,
            LoadControl,
            system_id,
            bounds,
            lambda: self.get_system_load_control(system_id),
        )
