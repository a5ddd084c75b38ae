"""Ground truth from the simulator, and the statistics as the recorder holds them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from homeassistant.components.recorder import get_instance
from homeassistant.components.recorder.statistics import statistics_during_period
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er

from custom_components.enphase_battery.const import DOMAIN
from custom_components.enphase_battery.statistics import statistic_id

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
