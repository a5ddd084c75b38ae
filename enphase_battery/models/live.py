"""Models of the live stream: one typed :class:`LiveFrame` per moment, live or polled."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from .now import _discharge_w
from .vocabulary import BatteryMode, GridState, Percent

__all__ = ["LiveEvent", "LiveFrame", "LivePayload", "LiveSource"]


class LiveSource(enum.StrEnum):
    """Where a frame came from."""

    #: The ``live_data`` stream (Kilowatt plan and up, billed per connection).
    LIVE = "live"
    #: A ``latest_telemetry`` poll (the fallback; fewer fields, 15-minute-ish freshness).
    LATEST = "latest"


@attrs.frozen
class LivePayload:
    """The inner ``data`` object of a ``live_data`` event (powers in W)."""

    pv_power: int | None = None
    grid_power: int | None = None
    battery_power: int | None = None
    battery_soc: Percent | None = None
    battery_mode: BatteryMode | None = None
    grid_status: GridState | None = None
    consumption_power: int | None = None
    generator_power: int | None = None
    envoy_serial_number: tuple[str, ...] = ()


@attrs.frozen
class LiveEvent:
    """One ``live_data`` event's JSON: ``{"data": {...}, "timestamp_epoch": ms, "type"}``."""

    data: LivePayload | None = None
    timestamp_epoch: int | None = None
    type: str | None = None


@attrs.frozen
class LiveFrame:
    """What the battery and site do at ``timestamp``.

    ``source`` says whether it came from the live stream or a ``latest_telemetry`` poll;
    polled frames carry only ``battery_power`` and ``battery_mode`` (the rest ``None``),
    and their ``timestamp`` is the Encharges' last report.  Powers are W;
    ``battery_power`` is signed (see :data:`BATTERY_POWER_DISCHARGE_POSITIVE`).
    """

    timestamp: datetime
    source: LiveSource
    battery_soc: int | None = None
    battery_power: int | None = None
    battery_mode: BatteryMode | None = None
    grid_status: GridState | None = None
    pv_power: int | None = None
    grid_power: int | None = None
    consumption_power: int | None = None
    generator_power: int | None = None
    envoy_serial_numbers: tuple[str, ...] = ()
    #: The SSE ``id:`` of the event (live frames only, when the server sends one).
    event_id: str | None = None

    @property
    def battery_discharge_w(self) -> int | None:
        """Battery power as W leaving the batteries (negative while charging)."""
        return _discharge_w(self.battery_power)
