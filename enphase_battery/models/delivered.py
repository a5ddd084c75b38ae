"""What the pollers deliver: one 15-minute interval of one stream, and how a stream is named.

The SDK's own model (the others in this package are the API's answers): defined here, at
the bottom of the package, so that the statistics, the stores and the pollers share it
without importing each other.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

__all__ = ["BATTERY", "INTERVAL_S", "StreamKey", "TelemetryInterval"]

#: ``source`` of the system-level battery stream.
BATTERY = "battery"
#: Length of one interval.
INTERVAL_S = 900
#: How a stream is named everywhere: ``(system_id, source)``.
StreamKey = tuple[int, str]


@attrs.frozen
class TelemetryInterval:
    """One 15-minute interval of one stream, as the poller delivers it.

    Attributes:
        system_id: the system.
        source: ``"battery"`` for the system aggregate, else the Encharge serial number.
        end_at: end of the interval (tz-aware UTC); it covers ``(end_at - 15 min, end_at]``.
        charge_wh / discharge_wh: energy into / out of the battery over the interval.
        soc_percent: state of charge at ``end_at``.
        devices_reporting / total_devices: how many of the system's batteries the
            values cover (1/1 for an Encharge stream).
        partial: ``True`` when delivered with ``devices_reporting < total_devices``
            because it stayed incomplete for longer than ``settle``.
        revision: 0 for an interval's first emission; a poller with ``revise_for``
            emits an interval that went out partial again, with ``revision`` counting
            up, when a re-read shows other values (the consumer upserts on
            ``(system_id, source, end_at)``; a sum adds the difference).
    """

    system_id: int
    source: str
    end_at: datetime
    charge_wh: int
    discharge_wh: int
    soc_percent: int | None
    devices_reporting: int | None
    total_devices: int | None
    partial: bool = False
    revision: int = 0

    @property
    def start_at(self) -> datetime:
        """Start of the interval."""
        return self.end_at - timedelta(seconds=INTERVAL_S)
