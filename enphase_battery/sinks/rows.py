"""The sinks' rows: one shape for every database, taken from the delivered models."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from enphase_battery.models.delivered import TelemetryInterval
from enphase_battery.statistics import HourlyRow

__all__ = [
    "HOUR_COLUMNS",
    "HOUR_TABLE",
    "INTERVAL_COLUMNS",
    "INTERVAL_TABLE",
    "HourTuple",
    "IntervalTuple",
    "hour_tuples",
    "interval_tuples",
]

#: The intervals' table (SQL) or measurement (InfluxDB).
INTERVAL_TABLE = "battery_interval"
#: The hourly rows' table or measurement (``stream --hourly``).
HOUR_TABLE = "battery_hour"

#: ``battery_interval``'s columns; the key is ``(system_id, source, end_at)``.
INTERVAL_COLUMNS = (
    "system_id",
    "source",
    "end_at",
    "charge_wh",
    "discharge_wh",
    "soc_percent",
    "partial",
    "revision",
)
#: ``battery_hour``'s columns; the key is ``(system_id, source, start_at)``.
HOUR_COLUMNS = (
    "system_id",
    "source",
    "start_at",
    "charge_wh",
    "discharge_wh",
    "charge_sum_wh",
    "discharge_sum_wh",
    "soc_mean",
    "soc_min",
    "soc_max",
    "intervals",
    "partial",
)

IntervalTuple = tuple[int, str, datetime, int, int, int | None, bool, int]
HourTuple = tuple[
    int, str, datetime, int, int, int, int, float | None, int | None, int | None, int, bool
]


def interval_tuples(intervals: Iterable[TelemetryInterval]) -> list[IntervalTuple]:
    """``battery_interval`` rows, in :data:`INTERVAL_COLUMNS` order (``end_at`` UTC)."""
    return [
        (
            iv.system_id,
            iv.source,
            iv.end_at.astimezone(UTC),
            iv.charge_wh,
            iv.discharge_wh,
            iv.soc_percent,
            iv.partial,
            iv.revision,
        )
        for iv in intervals
    ]


def hour_tuples(rows: Iterable[HourlyRow]) -> list[HourTuple]:
    """``battery_hour`` rows, in :data:`HOUR_COLUMNS` order (``start_at`` UTC)."""
    return [
        (
            row.system_id,
            row.source,
            row.start.astimezone(UTC),
            row.charge_wh,
            row.discharge_wh,
            row.charge_sum_wh,
            row.discharge_sum_wh,
            row.soc_mean,
            row.soc_min,
            row.soc_max,
            row.intervals,
            row.partial,
        )
        for row in rows
    ]
