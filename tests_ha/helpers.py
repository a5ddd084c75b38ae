"""Ground truth from the simulator, and the statistics as the recorder holds them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from homeassistant.components.recorder import get_instance
from homeassistant.components.recorder.statistics import statistics_during_period
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er

from custom_components.enphase_battery import history
from custom_components.enphase_battery.const import DOMAIN
from custom_components.enphase_battery.statistics import statistic_id
from enphase_battery import Batch, TelemetryInterval, TelemetryPoller

HOUR = timedelta(hours=1)
QUARTER = timedelta(minutes=15)


def expected_rows(intervals: Iterable[Any]) -> dict[datetime, tuple[int, int]]:
    """Hour start -> (charged sum, discharged sum) through that hour, from the first
    hour on: what Home Assistant must hold (intervals belong to the hour of their start)."""
    by_hour: dict[datetime, list[int]] = {}
    for interval in intervals:
        start = datetime.fromtimestamp(interval.end_at, UTC) - QUARTER
        hour = start.replace(minute=0, second=0, microsecond=0)
        sums = by_hour.setdefault(hour, [0, 0])
        sums[0] += interval.charge_wh
        sums[1] += interval.discharge_wh
    rows = {}
    charged = discharged = 0
    for hour in sorted(by_hour):
        charged += by_hour[hour][0]
        discharged += by_hour[hour][1]
        rows[hour] = (charged, discharged)
    return rows


def hour_of(interval: TelemetryInterval) -> datetime:
    """The hour a delivered interval belongs to: the hour of its start."""
    return (interval.end_at - QUARTER).replace(minute=0, second=0, microsecond=0)


def delivered_rows(
    intervals: Iterable[TelemetryInterval], source: str
) -> dict[datetime, tuple[int, int]]:
    """What Home Assistant must hold for ``source`` once these intervals (everything the
    poller delivered, in order) are imported: of each interval its newest revision
    (the later of equal ones), summed as :func:`expected_rows` sums the ground truth."""
    newest: dict[datetime, TelemetryInterval] = {}
    for interval in intervals:
        if interval.source != source:
            continue
        known = newest.get(interval.end_at)
        if known is None or interval.revision >= known.revision:
            newest[interval.end_at] = interval
    rows = {}
    charged = discharged = 0
    for end_at in sorted(newest):
        interval = newest[end_at]
        charged += interval.charge_wh
        discharged += interval.discharge_wh
        rows[hour_of(interval)] = (charged, discharged)
    return rows


class _RecordedBatches:
    """A poller's batch iterator that notes each batch it hands out."""

    def __init__(self, inner: AsyncIterator[Batch], into: list[TelemetryInterval]) -> None:
        self._inner = inner
        self._into = into

    def __aiter__(self) -> _RecordedBatches:
        return self

    async def __anext__(self) -> Batch:
        batch = await self._inner.__anext__()
        self._into.extend(batch.intervals)
        return batch


def record_deliveries(monkeypatch: pytest.MonkeyPatch) -> list[TelemetryInterval]:
    """Every interval the integration's pollers hand out from now on, in order (a batch
    that comes again after a failed commit is in it twice)."""
    delivered: list[TelemetryInterval] = []

    class RecordingPoller(TelemetryPoller):
        def batches(self, *, max_size: int = 1000, max_wait: float = 1.0) -> Any:
            inner = super().batches(max_size=max_size, max_wait=max_wait)
            return _RecordedBatches(inner, delivered)

    monkeypatch.setattr(history, "TelemetryPoller", RecordingPoller)
    return delivered


async def imported_rows(
    hass: HomeAssistant, system_id: int, source: str, since: datetime
) -> dict[datetime, tuple[float, float]]:
    """Hour start -> (charged sum, discharged sum) as the recorder's statistics hold them."""
    ids = {
        statistic_id(system_id, source, "charged"),
        statistic_id(system_id, source, "discharged"),
    }
    stats = await get_instance(hass).async_add_executor_job(
        statistics_during_period, hass, since, None, ids, "hour", None, {"sum", "state"}
    )
    charged = {
        _start(row): row["sum"] for row in stats.get(statistic_id(system_id, source, "charged"), [])
    }
    discharged = {
        _start(row): row["sum"]
        for row in stats.get(statistic_id(system_id, source, "discharged"), [])
    }
    assert charged.keys() == discharged.keys()
    return {hour: (charged[hour], discharged[hour]) for hour in sorted(charged)}


def _start(row: dict[str, Any]) -> datetime:
    start = row["start"]
    return datetime.fromtimestamp(start, UTC) if isinstance(start, float | int) else start


def entity_id(hass: HomeAssistant, platform: str, unique_id: str) -> str | None:
    """The entity with that unique id, if it was created."""
    return er.async_get(hass).async_get_entity_id(platform, DOMAIN, unique_id)
