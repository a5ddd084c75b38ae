"""Now, live and counters (fact sheet §7): latest telemetry, meters, summary, ``live_data``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import date, datetime
from typing import Any

import aiohttp

from enphase_battery.client.endpoints.base import EndpointBase
from enphase_battery.exceptions import InvalidRequestError
from enphase_battery.models import validation
from enphase_battery.models.live import LiveFrame
from enphase_battery.models.now import LatestTelemetry, StorageMeterReadings, SystemSummary

# The live_data machinery (``enphase_battery.live``, the SSE decoder) loads with the first
# stream: a client that never opens one does not pay its import at start-up.

__all__ = ["RealtimeEndpoints"]


class RealtimeEndpoints(EndpointBase):
    """What a battery does now: latest telemetry, counters, summary and ``live_data``."""

    async def get_latest_telemetry(self, system_id: int) -> LatestTelemetry:
        """Each Encharge's power (W, signed) and mode now (Watt plan and up; cheap).

        Values are ``None`` for a device whose last report is over 7 days old.
        """
        return await self._call("get_latest_telemetry", LatestTelemetry, system_id)

    async def get_storage_meter_readings(
        self, system_id: int, end_at: datetime | None = None
    ) -> StorageMeterReadings:
        """Each battery's lifetime charged / discharged counters (Wh), as of ``end_at``."""
        params: dict[str, Any] = {}
        if end_at is not None:
            params["end_at"] = validation.api_time("end_at", end_at)
        return await self._call(
            "get_storage_meter_readings", StorageMeterReadings, system_id, params=params
        )

    async def get_system_summary(
        self, system_id: int, summary_date: date | None = None
    ) -> SystemSummary:
        """The system summary (battery capacity and power ratings, last report times)."""
        params: dict[str, Any] = {}
        if summary_date is not None:
            params["summary_date"] = validation.api_date("summary_date", summary_date)
        return await self._call("get_system_summary", SystemSummary, system_id, params=params)

    def open_live_stream(
        self,
        system_id: int,
        *,
        duration_s: int = 300,
        last_event_id: str | None = None,
        idle_timeout_s: float = 90.0,
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """Low level: one open ``live_data`` response (``async with``), its body unread.

        Most callers want :meth:`live` (typed frames, reconnects, a budget) or
        :meth:`stream_live_data` (typed frames of one connection).  Each call is one
        billed connection (Kilowatt plan and up).
        """

        from enphase_battery.live.connect import open_live_stream as connect_live_stream
        from enphase_battery.live.session import MAX_DURATION_S, MIN_DURATION_S

        system_id = validation.system_id(system_id)
        if isinstance(duration_s, bool) or not isinstance(duration_s, int):
            raise InvalidRequestError("duration_s must be an int")
        if not MIN_DURATION_S <= duration_s <= MAX_DURATION_S:
            raise InvalidRequestError(f"duration_s must be 30-300, got {duration_s}")
        return connect_live_stream(
            self._transport,
            system_id,
            duration_s=duration_s,
            last_event_id=last_event_id,
            idle_timeout_s=idle_timeout_s,
        )

    async def stream_live_data(
        self, system_id: int, *, duration_s: int = 300
    ) -> AsyncIterator[LiveFrame]:
        """The frames of ONE ``live_data`` connection, until the server closes it.

        One billed connection; no reconnect, no budget, error events raised as
        :class:`LiveDataError`.  :meth:`live` is the managed version.
        """

        from enphase_battery.http.sse import aiter_sse
        from enphase_battery.live.errors import LiveDataError, live_error
        from enphase_battery.live.frames import frame_from_event

        async with self.open_live_stream(system_id, duration_s=duration_s) as response:
            async for event in aiter_sse(response.content.iter_any()):
                result = frame_from_event(event)
                if isinstance(result, int):
                    raise live_error(result) or LiveDataError(
                        f"live_data error event {result}", code=result
                    )
                if result is not None:
                    yield result
