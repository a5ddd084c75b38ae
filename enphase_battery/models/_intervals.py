"""The telemetry intervals hook: a week's 672 intervals built in one pass (the hot path of
every telemetry call), with the readings shared."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import accumulate, repeat
from operator import add, itemgetter
from typing import Any

from enphase_battery.models._scalars import (
    _structure_datetime,
    _structure_int,
    _structure_percent,
    _warn_unknown,
)
from enphase_battery.models.telemetry import EnergyReading, SocReading
from enphase_battery.util.slots import consume, slot_setters

__all__: list[str] = []


# Readings are immutable and repeat a lot (zero energy at night, SoC 0..100), so they are
# shared: looked up by devices_reporting, then by the value (two dict subscripts cost less
# than building and hashing a key tuple per reading).  Bounded: a table is cleared whole
# when full, which costs only a few re-creations.
_ENERGY: dict[Any, dict[Any, EnergyReading]] = {}
_SOC: dict[Any, dict[Any, SocReading]] = {}
_READINGS_MAX = 65_536
_COUNTS_MAX = 64
_NONE: dict[Any, Any] = {}
_END_AT = itemgetter("end_at")
_CHARGE = itemgetter("charge")
_DISCHARGE = itemgetter("discharge")
_SOC_FIELD = itemgetter("soc")


def _intervals_hook(cls: type[Any]) -> Any:
    # The hot path of every telemetry call (672 intervals a week): one tight loop instead of
    # the generated per-item dispatch; it accepts the same shapes as the generated hook.
    # Instances are filled through their slot descriptors, skipping the frozen __init__
    # (three times slower).
    set_end_at, set_charge, set_discharge, set_soc = slot_setters(
        cls, "end_at", "charge", "discharge", "soc"
    )
    new = object.__new__
    step = timedelta(seconds=_INTERVAL_S)

    def structure(value: Any, _type: Any) -> tuple[Any, ...]:
        try:
            fast = columns(value)
        except (KeyError, TypeError, ValueError, AttributeError):
            fast = None
        if fast is not None:
            return fast
        try:
            return build(value, True)
        except (KeyError, TypeError):
            # Some reading lacks a field (Encharge intervals carry no devices_reporting)
            # or is null: redo the whole list the lenient way.
            return build(value, False)

    def columns(value: Any) -> tuple[Any, ...] | None:
        # The common answer (consecutive intervals with int epochs, every reading complete
        # and met before) built column by column: comprehensions and C-level maps instead
        # of one loop body per interval.  Anything else (a gap, a missing field, a reading
        # not met yet: KeyError) is None or raises, and build() makes the same result.
        # It only reads the reading tables, so giving up half-way changes nothing.
        count = len(value)
        if not count:
            return None
        ends = list(map(_END_AT, value))
        first = ends[0]
        if type(first) is not int or set(map(type, ends)) != {int}:
            return None
        if ends != list(range(first, first + _INTERVAL_S * count, _INTERVAL_S)):
            return None
        energy = _ENERGY
        socs = _SOC
        if "devices_reporting" in value[0]["charge"]:
            charges = [energy[r["devices_reporting"]][r["enwh"]] for r in map(_CHARGE, value)]
            discharges = [energy[r["devices_reporting"]][r["enwh"]] for r in map(_DISCHARGE, value)]
            soc_readings = [
                socs[r["devices_reporting"]][r["percent"]] for r in map(_SOC_FIELD, value)
            ]
        else:
            # An Encharge's own readings carry no count: the tables of count None (as
            # build() files them), still right for a reading that does carry one.
            charges = [energy[r.get("devices_reporting")][r["enwh"]] for r in map(_CHARGE, value)]
            discharges = [
                energy[r.get("devices_reporting")][r["enwh"]] for r in map(_DISCHARGE, value)
            ]
            soc_readings = [
                socs[r.get("devices_reporting")][r["percent"]] for r in map(_SOC_FIELD, value)
            ]
        # Consecutive intervals are 900 s apart: adding is cheaper than converting.
        end_dts = accumulate(
            repeat(step, count - 1), add, initial=datetime.fromtimestamp(first, UTC)
        )
        intervals = list(map(new, repeat(cls, count)))
        consume(map(set_end_at, intervals, end_dts))
        consume(map(set_charge, intervals, charges))
        consume(map(set_discharge, intervals, discharges))
        consume(map(set_soc, intervals, soc_readings))
        return tuple(intervals)

    def build(value: Any, strict: bool) -> tuple[Any, ...]:
        energy = _ENERGY
        socs = _SOC
        none = _NONE
        fromtimestamp = datetime.fromtimestamp
        result: list[Any] = []
        append = result.append
        prev_ts: int | None = None
        prev_dt = _EPOCH
        for item in value:
            end_at = item["end_at"]
            if type(end_at) is int:
                # Consecutive intervals are 900 s apart: adding is cheaper than converting.
                end_dt = (
                    prev_dt + step
                    if end_at - _INTERVAL_S == prev_ts
                    else fromtimestamp(end_at, UTC)
                )
                prev_ts, prev_dt = end_at, end_dt
            else:
                end_dt = _structure_datetime(end_at, datetime)
            interval = new(cls)
            set_end_at(interval, end_dt)
            if strict:
                # Subscripts, not .get() (they need no call); a reading that lacks a
                # field raises KeyError from the _strict function, and the list is redone.
                charge = item["charge"]
                discharge = item["discharge"]
                soc = item["soc"]
                try:
                    set_charge(interval, energy[charge["devices_reporting"]][charge["enwh"]])
                except KeyError:
                    set_charge(interval, _new_energy_strict(charge))
                try:
                    set_discharge(
                        interval, energy[discharge["devices_reporting"]][discharge["enwh"]]
                    )
                except KeyError:
                    set_discharge(interval, _new_energy_strict(discharge))
                try:
                    set_soc(interval, socs[soc["devices_reporting"]][soc["percent"]])
                except KeyError:
                    set_soc(interval, _new_soc_strict(soc))
            else:
                charge = item.get("charge") or none
                discharge = item.get("discharge") or none
                soc = item.get("soc") or none
                set_charge(
                    interval,
                    (energy.get(charge.get("devices_reporting")) or none).get(charge.get("enwh"))
                    or _new_energy(charge),
                )
                set_discharge(
                    interval,
                    (energy.get(discharge.get("devices_reporting")) or none).get(
                        discharge.get("enwh")
                    )
                    or _new_energy(discharge),
                )
                set_soc(
                    interval,
                    (socs.get(soc.get("devices_reporting")) or none).get(soc.get("percent"))
                    or _new_soc(soc),
                )
            append(interval)
        return tuple(result)

    return structure


_INTERVAL_S = 900
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _table(tables: dict[Any, dict[Any, Any]], count: Any) -> dict[Any, Any]:
    """The readings table for ``count`` devices reporting, a fresh one when full."""
    table = tables.get(count)
    if table is None or len(table) >= _READINGS_MAX:
        if len(tables) >= _COUNTS_MAX:
            tables.clear()
        table = tables[count] = {}
    return table


def _new_energy_strict(raw: dict[str, Any]) -> EnergyReading:
    if "enwh" not in raw or "devices_reporting" not in raw:
        raise KeyError("enwh/devices_reporting")  # the list is redone the lenient way
    return _new_energy(raw)


def _new_soc_strict(raw: dict[str, Any]) -> SocReading:
    if "percent" not in raw or "devices_reporting" not in raw:
        raise KeyError("percent/devices_reporting")  # the list is redone the lenient way
    return _new_soc(raw)


def _new_energy(raw: dict[str, Any]) -> EnergyReading:
    value, count = raw.get("enwh"), raw.get("devices_reporting")
    reading = EnergyReading(_int_or_zero(value), _opt_int(count))
    _table(_ENERGY, count)[value] = reading
    return reading


def _new_soc(raw: dict[str, Any]) -> SocReading:
    value, count = raw.get("percent"), raw.get("devices_reporting")
    reading = SocReading(_opt_int(value), _opt_int(count))
    _table(_SOC, count)[value] = reading
    return reading


def _int_or_zero(value: Any) -> int:
    if type(value) is int:
        return value
    return 0 if value is None else _structure_int(value, int)


def _opt_int(value: Any) -> int | None:
    if value is None or type(value) is int:
        return value
    try:
        # A count or a SoC as "97%", "97.0", or "n/a" / "paused" (unknown: None).
        return _structure_percent(value, int)
    except (TypeError, ValueError):
        _warn_unknown("reading", value)
        return None
