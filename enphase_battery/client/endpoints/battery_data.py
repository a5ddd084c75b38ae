"""Battery data: daily lifetime counters and 15-minute telemetry (system and Encharge)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from enphase_battery.client.endpoints.base import EndpointBase
from enphase_battery.exceptions import InvalidRequestError
from enphase_battery.models import (
    BatteryLifetime,
    BatteryTelemetry,
    EnchargeTelemetry,
    Granularity,
    validation,
)

__all__ = ["BatteryDataEndpoints"]


class BatteryDataEndpoints(EndpointBase):
    """``get_battery_lifetime``, ``get_battery_telemetry`` and ``get_encharge_telemetry``."""

    async def get_battery_lifetime(
        self,
        system_id: int,
        start_date: date | None = None,
        end_date: date | None = None,
    ) -> BatteryLifetime:
        """Daily charge and discharge (Wh) from ``start_date`` to ``end_date`` (yesterday)."""
        params: dict[str, Any] = {}
        if start_date is not None:
            params["start_date"] = validation.plain_date("start_date", start_date)
        if end_date is not None:
            params["end_date"] = validation.plain_date("end_date", end_date)
        if start_date is not None and end_date is not None and end_date < start_date:
            raise InvalidRequestError("end_date is before start_date")
        return await self._call("get_battery_lifetime", BatteryLifetime, system_id, params=params)

    async def get_battery_telemetry(
        self,
        system_id: int,
        start_at: datetime | None = None,
        granularity: Granularity | str = Granularity.DAY,
        *,
        start_date: date | None = None,
    ) -> BatteryTelemetry:
        """System battery intervals of 15 minutes in the window after ``start_at``.

        The window is ``granularity`` long (``15mins``: 1 interval, ``day``: 96, ``week``:
        672) and ends no later than now; it defaults to today from local midnight.
        """
        params = _telemetry_params(start_at, start_date, granularity)
        return await self._call("get_battery_telemetry", BatteryTelemetry, system_id, params=params)

    async def get_encharge_telemetry(
        self,
        system_id: int,
        serial_no: str,
        start_at: datetime | None = None,
        granularity: Granularity | str = Granularity.DAY,
        *,
        start_date: date | None = None,
    ) -> EnchargeTelemetry:
        """One Encharge's 15-minute intervals; same window rules as battery telemetry."""
        serial = validation.serial_number(serial_no)
        params = _telemetry_params(start_at, start_date, granularity)
        return await self._call(
            "get_encharge_telemetry",
            EnchargeTelemetry,
            system_id,
            params=params,
            serial_no=serial,
        )


def _telemetry_params(
    start_at: datetime | None, start_date: date | None, granularity: Granularity | str
) -> dict[str, Any]:
    params: dict[str, Any] = {"granularity": validation.granularity(granularity).value}
    if start_at is not None and start_date is not None:
        raise InvalidRequestError("give start_at or start_date, not both")
    if start_at is not None:
        params["start_at"] = validation.aware_datetime("start_at", start_at)
    if start_date is not None:
        params["start_date"] = validation.plain_date("start_date", start_date)
    return params
