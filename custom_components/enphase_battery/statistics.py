"""The battery's hourly energy as external long-term statistics (``enphase_battery:...``).

Each stream (the system's battery aggregate, each Encharge) has three statistics:

* ``enphase_battery:<system>_<source>_charged`` and ``..._discharged``: energy (Wh) with a
  running ``sum`` (``has_sum``), for the Energy dashboard's battery;
* ``enphase_battery:<system>_<source>_soc``: the state of charge (%), an hourly mean with
  its min and max (``mean_type`` arithmetic).

The rows come from :class:`~enphase_battery.HourlyEnergy`, which says which hours a batch
changed: a late interval or a revision re-emits its hour and every later hour whose sum
moved, and importing a row again replaces the stored one (the recorder upserts on
statistic and start).  So the recorder always holds exactly the SDK's hourly rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from homeassistant.components.recorder.models import (
    StatisticData,
    StatisticMeanType,
    StatisticMetaData,
)
from homeassistant.components.recorder.statistics import async_add_external_statistics
from homeassistant.const import PERCENTAGE, UnitOfEnergy
from homeassistant.core import HomeAssistant
from homeassistant.helpers.recorder import get_instance

from enphase_battery import HourlyRow
from enphase_battery.models import BATTERY

from .const import DOMAIN

#: The kinds of statistic each stream has.
CHARGED = "charged"
DISCHARGED = "discharged"
SOC = "soc"
KINDS = (CHARGED, DISCHARGED, SOC)

# Whether the running recorder's metadata has ``unit_class`` (added after 2025.4; the
# 2025.4 recorder refuses an unknown key).
_HAS_UNIT_CLASS = "unit_class" in getattr(StatisticMetaData, "__annotations__", {})


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def statistic_id(system_id: int, source: str, kind: str) -> str:
    """``enphase_battery:<system>_<source>_<kind>`` (``source``: battery or a serial)."""
    return f"{DOMAIN}:{system_id}_{_slug(source)}_{kind}"


def statistic_metadata(
    system_id: int, source: str, kind: str, system_name: str
) -> StatisticMetaData:
    """The metadata of one statistic, in the shape the running recorder takes."""
    what = "battery" if source == BATTERY else f"Encharge {source}"
    label = {CHARGED: "charged", DISCHARGED: "discharged", SOC: "state of charge"}[kind]
    energy = kind != SOC
    metadata: dict[str, Any] = {
        "source": DOMAIN,
        "statistic_id": statistic_id(system_id, source, kind),
        "name": f"{system_name} {what} {label}",
        "has_sum": energy,
        "mean_type": StatisticMeanType.NONE if energy else StatisticMeanType.ARITHMETIC,
        "unit_of_measurement": UnitOfEnergy.WATT_HOUR if energy else PERCENTAGE,
    }
    if _HAS_UNIT_CLASS:
        metadata["unit_class"] = "energy" if energy else None
    return metadata  # type: ignore[return-value]


def _point(row: HourlyRow, kind: str) -> StatisticData | None:
    point = row.charged if kind == CHARGED else row.discharged if kind == DISCHARGED else row.soc
    data: dict[str, Any] = {"start": point.start}
    if kind == SOC:
        if point.mean is None:
            return None
        data.update(mean=point.mean, min=point.min, max=point.max)
    else:
        data.update(state=point.state, sum=point.sum)
    return data  # type: ignore[return-value]


def import_rows(
    hass: HomeAssistant, rows: Iterable[HourlyRow], system_names: dict[int, str]
) -> int:
    """Queue the rows' statistics for the recorder (an upsert per hour); how many points."""
    grouped: dict[tuple[int, str, str], list[StatisticData]] = {}
    for row in rows:
        for kind in KINDS:
            point = _point(row, kind)
            if point is not None:
                grouped.setdefault((row.system_id, row.source, kind), []).append(point)
    for (system_id, source, kind), points in grouped.items():
        name = system_names.get(system_id, f"Enphase {system_id}")
        metadata = statistic_metadata(system_id, source, kind, name)
        async_add_external_statistics(hass, metadata, points)
    return sum(map(len, grouped.values()))


async def wait_imported(hass: HomeAssistant) -> None:
    """Return once the recorder has written everything queued so far (the imports
    commit in the recorder's thread: the checkpoint is saved only after them)."""
    await get_instance(hass).async_block_till_done()
