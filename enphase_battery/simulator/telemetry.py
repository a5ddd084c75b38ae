"""Telemetry and lifetime responses: query windows, visibility and aggregation.

Semantics follow fact sheet §5: 15-minute intervals labelled by their end, a window of
``(start, min(now, start + span)]``, local-midnight defaults in the system's timezone,
and 422s for windows the system has no data for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from itertools import compress, repeat
from operator import add, mul, truediv
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from enphase_battery.simulator import interval_json
from enphase_battery.simulator.arrival import ArrivalModel
from enphase_battery.simulator.battery import INTERVAL_S, BatterySystem, Encharge
from enphase_battery.simulator.errors import ApiProblem

__all__ = [
    "GRANULARITY_SPAN_S",
    "Window",
    "battery_lifetime",
    "battery_telemetry",
    "encharge_telemetry",
    "last_visible_end_at",
    "local_midnight",
    "parse_window",
]

GRANULARITY_SPAN_S = {"15mins": INTERVAL_S, "day": 86_400, "week": 7 * 86_400}
#: The API serves at most two years back (fact sheet §5).
MAX_AGE_S = 730 * 86_400
#: How far back "last reported" lookups search before giving up.
_LOOKBACK_INTERVALS = 30 * 96


@attrs.frozen
class Window:
    """A resolved telemetry request window: intervals with end_at in (start, end]."""

    start: int
    end: int
    granularity: str
    #: Whether the caller passed ``start_date`` (the response then echoes date names).
    by_date: bool

    def end_ats(self, last_end_at: int) -> range:
        """Interval labels in the window, up to ``last_end_at``."""
        first = (self.start // INTERVAL_S + 1) * INTERVAL_S
        last = min(self.end - self.end % INTERVAL_S, last_end_at)
        return range(first, last + 1, INTERVAL_S)

    def echo(self) -> dict[str, int]:
        """The window fields of the response, named as the request named them."""
        if self.by_date:
            return {"start_date": self.start, "end_date": self.end}
        return {"start_at": self.start, "end_at": self.end}


def local_midnight(tz: ZoneInfo, day: date) -> int:
    """Epoch of local midnight starting ``day`` in ``tz``."""
    return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())


def _local_date(tz: ZoneInfo, epoch: float) -> date:
    return datetime.fromtimestamp(epoch, UTC).astimezone(tz).date()


def _parse_date(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiProblem(422, f"Invalid {name}: expected YYYY-MM-DD") from None


def _invalid_range(start: int, end: int, first: int, last: int | None) -> ApiProblem:
    return ApiProblem(
        422,
        "Requested date range is invalid for this system. "
        f"{{:start_at=>{start}, :end_at=>{end}, :first_interval=>{first}, "
        f":last_interval=>{last if last is not None else 'nil'}}}",
    )


def parse_window(
    query: Mapping[str, str],
    *,
    tz: ZoneInfo,
    now: int,
    first_end_at: int,
    last_visible: int | None,
) -> Window:
    """Resolve ``start_at``/``start_date`` and ``granularity``, or raise a 422 problem."""
    granularity = query.get("granularity", "day")
    span = GRANULARITY_SPAN_S.get(granularity)
    if span is None:
        raise ApiProblem(
            422, f"Invalid granularity '{granularity}'. Allowed values are 15mins, day, week"
        )
    by_date = False
    # The default start and a start_date both name a whole local day.
    whole_day = True
    if "start_at" in query:
        whole_day = False
        try:
            start = int(query["start_at"])
        except ValueError:
            raise ApiProblem(422, "start_at must be a Unix epoch in seconds") from None
    elif "start_date" in query:
        by_date = True
        start = local_midnight(tz, _parse_date(query["start_date"], "start_date"))
    else:
        start = local_midnight(tz, _local_date(tz, now))
    if start > now:
        raise ApiProblem(422, "Requested date is in the future")
    end = min(now, start + span)
    if start < now - MAX_AGE_S:
        raise ApiProblem(422, "Requested date range is invalid: start must be within 2 years")
    operational_at = first_end_at - INTERVAL_S
    # For a whole day, the day operation began is a valid one.
    too_early = start + 86_400 <= operational_at if whole_day else start < operational_at
    if too_early:
        raise _invalid_range(start, end, first_end_at, last_visible)
    return Window(start, end, granularity, by_date)


def last_visible_end_at(
    devices: list[Encharge], arrival: ArrivalModel, now: float, newest_end_at: int
) -> tuple[int, list[Encharge]] | None:
    """The newest end_at any of ``devices`` has reported, with the devices that have."""
    end_at = newest_end_at
    for _ in range(_LOOKBACK_INTERVALS):
        reporting = [
            d
            for d in devices
            if 0 <= (i := d.index(end_at)) < len(d) and arrival.visible_at(d, i) <= now
        ]
        if reporting:
            return end_at, reporting
        end_at -= INTERVAL_S
    return None


def _percent_str(stored_wh: float, capacity_wh: float) -> str:
    return f"{min(100, max(0, round(stored_wh * 100.0 / capacity_wh)))}%"


def _add_into(target: list[Any], lo: int, values: Iterable[Any]) -> None:
    """``target[lo + k] += values[k]`` for each k, as one slice assignment."""
    values = list(values)
    hi = lo + len(values)
    target[lo:hi] = map(add, target[lo:hi], values)


def battery_telemetry(
    system: BatterySystem, arrival: ArrivalModel, window: Window, now: float
) -> bytes:
    """``GET /systems/{id}/telemetry/battery``: sums over the devices that reported.

    Returns the JSON body.  Per device, the intervals old enough to be visible whatever
    their delays are added as whole slices; only the recent tail is checked one by one.
    """
    end_ats = window.end_ats(system.last_end_at)
    n = len(end_ats)
    charge = [0] * n
    discharge = [0] * n
    stored = [0.0] * n
    capacity = [0] * n
    reporting = [0] * n
    if n:
        first_label = end_ats[0]
        for device in system.encharges:
            lo = max(0, device.index(first_label))
            hi = min(len(device) - 1, device.index(end_ats[-1]))
            if lo > hi:
                continue
            offset = (device.first_end_at - first_label) // INTERVAL_S
            dev_charge, dev_discharge = device.charge_wh, device.discharge_wh
            dev_stored, dev_capacity = device.stored_end_wh, device.capacity_wh
            sure = min(hi, arrival.surely_visible_until(device, now))
            if sure >= lo:
                j, count = lo + offset, sure - lo + 1
                _add_into(charge, j, dev_charge[lo : sure + 1])
                _add_into(discharge, j, dev_discharge[lo : sure + 1])
                _add_into(stored, j, dev_stored[lo : sure + 1])
                _add_into(capacity, j, repeat(dev_capacity, count))
                _add_into(reporting, j, repeat(1, count))
                lo = sure + 1
            if lo > hi:
                continue
            mask = arrival.visible_mask(device, lo, hi, now)
            for k, visible in enumerate(mask):
                if visible:
                    i = lo + k
                    j = i + offset
                    charge[j] += dev_charge[i]
                    discharge[j] += dev_discharge[i]
                    stored[j] += dev_stored[i]
                    capacity[j] += dev_capacity
                    reporting[j] += 1
    labels: Sequence[int] = end_ats
    if 0 in reporting:
        # Only intervals some device has reported are listed.
        shown = [count > 0 for count in reporting]
        labels = list(compress(end_ats, shown))
        charge = list(compress(charge, shown))
        discharge = list(compress(discharge, shown))
        stored = list(compress(stored, shown))
        capacity = list(compress(capacity, shown))
        reporting = list(compress(reporting, shown))
    # Stored energy never leaves 0..capacity (the physics clamps it), so the percentage
    # needs no clamp of its own.
    soc = list(map(round, map(truediv, map(mul, stored, repeat(100.0)), capacity)))
    last = last_visible_end_at(system.encharges, arrival, now, system.last_end_at)
    aggregate_soc: str | None = None
    if last is not None:
        end_at, devices = last
        aggregate_soc = _percent_str(
            sum(d.stored_end_wh[d.index(end_at)] for d in devices),
            sum(d.capacity_wh for d in devices),
        )
    envelope = {
        "system_id": system.system_id,
        "granularity": window.granularity,
        "total_devices": len(system.encharges),
        **window.echo(),
        "items": "intervals",
        "intervals": None,
        "last_reported_aggregate_soc": aggregate_soc,
    }
    return interval_json.with_intervals(
        envelope, interval_json.battery_intervals(labels, charge, discharge, soc, reporting)
    )


def encharge_telemetry(
    system: BatterySystem,
    device: Encharge,
    arrival: ArrivalModel,
    window: Window,
    now: float,
) -> bytes:
    """``GET /systems/{id}/devices/encharges/{serial}/telemetry``: the JSON body."""
    end_ats = window.end_ats(device.last_end_at)
    shown: list[int] = []
    if len(end_ats):
        lo = max(0, device.index(end_ats[0]))
        hi = min(len(device) - 1, device.index(end_ats[-1]))
        if lo <= hi:
            sure = min(hi, arrival.surely_visible_until(device, now))
            shown = list(range(lo, max(lo, sure + 1)))
            if sure < hi:
                tail = max(lo, sure + 1)
                mask = arrival.visible_mask(device, tail, hi, now)
                shown.extend(tail + k for k, visible in enumerate(mask) if visible)
    if shown and shown[-1] - shown[0] == len(shown) - 1:
        # Contiguous (the usual case): slices instead of one lookup per interval.
        first, stop = shown[0], shown[-1] + 1
        charge: Sequence[int] = device.charge_wh[first:stop]
        discharge: Sequence[int] = device.discharge_wh[first:stop]
        stored: Sequence[float] = device.stored_end_wh[first:stop]
    else:
        charge = [device.charge_wh[i] for i in shown]
        discharge = [device.discharge_wh[i] for i in shown]
        stored = [device.stored_end_wh[i] for i in shown]
    labels = [device.first_end_at + i * INTERVAL_S for i in shown]
    soc = list(
        map(round, map(truediv, map(mul, stored, repeat(100.0)), repeat(device.capacity_wh)))
    )
    last = last_visible_end_at([device], arrival, now, device.last_end_at)
    envelope = {
        "system_id": system.system_id,
        "serial_number": device.serial,
        "granularity": window.granularity,
        "total_devices": 1,
        **window.echo(),
        "items": "intervals",
        "intervals": None,
        "last_reported_time": last[0] if last else None,
        "last_reported_soc": f"{device.soc_percent(device.index(last[0]))}%" if last else None,
    }
    return interval_json.with_intervals(
        envelope, interval_json.encharge_intervals(labels, charge, discharge, soc)
    )


def battery_lifetime(
    system: BatterySystem, arrival: ArrivalModel, query: Mapping[str, str], now: float
) -> dict[str, Any]:
    """``GET /systems/{id}/battery_lifetime``: Wh per local day, summing visible telemetry.

    ``start_date`` defaults to (and is clamped to) the day the system started
    operating; ``end_date`` defaults to yesterday and is clamped to today.
    """
    tz = system.tz
    today = _local_date(tz, now)
    first_day = _local_date(tz, system.operational_at)
    start_day = (
        _parse_date(query["start_date"], "start_date") if "start_date" in query else first_day
    )
    end_day = (
        _parse_date(query["end_date"], "end_date")
        if "end_date" in query
        else today - timedelta(days=1)
    )
    if start_day > today:
        raise ApiProblem(422, "Requested date is in the future")
    start_day = max(start_day, first_day)
    end_day = min(end_day, today)
    if end_day < start_day:
        raise ApiProblem(422, "end_date must not be before start_date")
    days = (end_day - start_day).days + 1
    bounds = [local_midnight(tz, start_day + timedelta(days=k)) for k in range(days + 1)]
    charge = [0] * days
    discharge = [0] * days
    for device in system.encharges:
        lo = max(0, device.index(bounds[0] + INTERVAL_S))
        hi = min(len(device) - 1, device.index(bounds[-1]))
        if lo > hi:
            continue
        mask = arrival.visible_mask(device, lo, hi, now)
        for day in range(days):
            day_lo = max(lo, device.index(bounds[day] + INTERVAL_S))
            day_hi = min(hi, device.index(bounds[day + 1]))
            for i in range(day_lo, day_hi + 1):
                if mask[i - lo]:
                    charge[day] += device.charge_wh[i]
                    discharge[day] += device.discharge_wh[i]
    last = last_visible_end_at(system.encharges, arrival, now, system.last_end_at)
    last_report = last[0] if last else None
    return {
        "system_id": system.system_id,
        "start_date": start_day.isoformat(),
        "charge": charge,
        "discharge": discharge,
        "meta": {
            "status": "normal",
            "last_report_at": last_report,
            "last_energy_at": last_report,
            "operational_at": system.operational_at,
        },
    }
