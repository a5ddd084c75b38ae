"""``battery_now()``: state of charge, power, mode and grid in one answer, as cheaply as
the plan allows."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Protocol

import attrs

from enphase_battery.exceptions import PermissionDeniedError
from enphase_battery.live.budget import LiveBudget
from enphase_battery.live.errors import LiveDataError
from enphase_battery.live.session import LiveSession
from enphase_battery.models import BatteryMode, BatteryTelemetry, Granularity, GridState, GridStatus
from enphase_battery.models.now import LatestTelemetry
from enphase_battery.models.vocabulary import BatteryState

__all__ = ["BatteryNow", "NowReads", "battery_now"]

_LOGGER = logging.getLogger(__name__)


class NowReads(Protocol):
    """What :func:`battery_now` calls: :class:`~enphase_battery.EnphaseClient` has it
    (passed down so that the live package never imports the client)."""

    def live(
        self, system_id: int, *, budget: LiveBudget | None = ..., **options: Any
    ) -> LiveSession: ...

    async def get_latest_telemetry(self, system_id: int) -> LatestTelemetry: ...

    async def get_battery_telemetry(
        self, system_id: int, start_at: datetime | None = ..., granularity: Granularity | str = ...
    ) -> BatteryTelemetry: ...

    async def get_system_grid_status(self, system_id: int) -> GridStatus: ...


@attrs.frozen
class BatteryNow:
    """What the battery does now, and how fresh that is.

    ``source`` is ``"latest"`` (``latest_telemetry`` + the last reported SoC: 2
    requests, Watt plan and up; as fresh as the gateway's last upload) or ``"live"``
    (one ``live_data`` event: 1 billed connection, Kilowatt and up; seconds old).
    """

    soc_percent: int | None
    #: W leaving the batteries (negative while charging): ``live_data``'s
    #: ``battery_power``, or from ``latest_telemetry`` each Encharge's state for the
    #: direction and its ``power`` for the magnitude.
    battery_power: int | None
    #: The profile (``live_data`` only: ``latest_telemetry`` does not carry it).
    battery_mode: BatteryMode | None
    grid_state: GridState | None
    as_of: datetime | None
    source: str
    #: Charging, discharging or idle (``latest_telemetry``'s ``operational_mode``, or
    #: the direction of ``live_data``'s power).
    battery_state: BatteryState | None = None

    @property
    def battery_discharge_w(self) -> int | None:
        """W leaving the batteries (negative while charging)."""
        return self.battery_power

    def describe(self) -> str:
        """One line: ``SoC 87 % | discharging 1200 W | Self-consumption | On Grid``."""
        soc = "SoC ?" if self.soc_percent is None else f"SoC {self.soc_percent} %"
        out_w = self.battery_discharge_w
        if out_w is None:
            power = "power ?"
        elif out_w > 0:
            power = f"discharging {out_w} W"
        elif out_w < 0:
            power = f"charging {-out_w} W"
        elif self.battery_state is BatteryState.UNKNOWN:
            power = "state ?"
        else:
            power = "idle 0 W"
        mode = self.battery_mode.value if self.battery_mode else "mode ?"
        grid = self.grid_state.value if self.grid_state else "grid ?"
        when = f"as of {self.as_of:%Y-%m-%d %H:%MZ}" if self.as_of else "as of ?"
        return f"{soc} | {power} | {mode} | {grid} | {when} ({self.source})"


async def battery_now(
    client: NowReads, system_id: int, *, grid: bool = False, live: bool = False
) -> BatteryNow:
    """The battery now.

    By default two requests: ``latest_telemetry`` (power and its direction) and the 15-minute
    battery telemetry's ``last_reported_aggregate_soc``.  ``grid=True`` adds
    ``grid_status`` (a configuration endpoint: Megawatt or Partner plan).  ``live=True``
    reads one ``live_data`` event instead (one billed connection, Kilowatt and up),
    which carries all four; where live data is refused (403, 466, 472, 473...) it answers
    the two-request way.
    """
    if live:
        try:
            async with client.live(
                system_id, budget=LiveBudget(total=1), duration_s=30, fallback=False
            ) as session:
                async for frame in session:
                    return BatteryNow(
                        soc_percent=frame.battery_soc,
                        battery_power=frame.battery_power,
                        battery_mode=frame.battery_mode,
                        grid_state=frame.grid_status,
                        as_of=frame.timestamp,
                        source=frame.source.value,
                        battery_state=frame.battery_state,
                    )
        except (PermissionDeniedError, LiveDataError) as err:
            # No live data here (plan, gateway): the two-request answer instead.
            _LOGGER.info("battery_now: live data unavailable (%s); using latest_telemetry", err)
    latest = await client.get_latest_telemetry(system_id)
    telemetry = await client.get_battery_telemetry(
        system_id, granularity=Granularity.FIFTEEN_MINUTES
    )
    grid_state = None
    if grid:
        grid_state = (await client.get_system_grid_status(system_id)).grid_state
    return BatteryNow(
        soc_percent=telemetry.last_reported_aggregate_soc,
        battery_power=latest.battery_discharge_w,
        battery_mode=None,
        grid_state=grid_state,
        as_of=latest.last_report_at,
        source="latest",
        battery_state=latest.battery_state,
    )
