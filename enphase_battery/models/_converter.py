"""The one ``cattrs`` converter for JSON in and out, with the API's quirks as hooks."""

from __future__ import annotations

import logging
import types
import typing
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate, repeat
from operator import add, itemgetter
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn

from .config import BatterySettings, GridStatus, StormGuard
from .discovery import Device, DeviceGroups
from .live import LiveFrame, structure_live_frame
from .telemetry import BatteryInterval, EnchargeInterval, EnergyReading, SocReading
from .vocabulary import BatteryMode, Flag, Granularity, GridState, LoadControlMode, Percent, _match

__all__ = ["converter"]

_LOGGER = logging.getLogger(__name__)


def _structure_datetime(value: Any, _type: Any) -> datetime:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a timestamp")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text), UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise TypeError(f"not a timestamp: {value!r}")


def _structure_date(value: Any, _type: Any) -> date:
    if isinstance(value, str) and not value.strip().isdigit():
        return date.fromisoformat(value.strip()[:10])
    if isinstance(value, int | str) and not isinstance(value, bool):
        # Some answers echo start_date/end_date as epochs of the system's local midnight,
        # which lies within about 12 hours of that date's UTC midnight: round to it.
        return datetime.fromtimestamp(int(value) + 43_200, UTC).date()
    raise TypeError(f"not a date: {value!r}")


def _structure_flag(value: Any, _type: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text.startswith(("enabled", "true", "yes", "on")) or text == "1":
            return True
        if text.startswith(("disabled", "false", "no", "off")) or text == "0":
            return False
    raise ValueError(f"not an enabled/disabled flag: {value!r}")


def _structure_percent(value: Any, _type: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a percentage")
    if isinstance(value, int | float):
        return round(value)
    if isinstance(value, str):
        return round(float(value.strip().rstrip("%").strip()))
    raise TypeError(f"not a percentage: {value!r}")


def _structure_int(value: Any, _type: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("a boolean is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return round(value)
    if isinstance(value, str):
        return round(float(value))
    raise TypeError(f"not an integer: {value!r}")


def _structure_devices(value: Any, _type: Any) -> DeviceGroups:
    # Some device groups are objects rather than lists on some sites; keep the lists only.
    groups = {}
    if isinstance(value, dict):
        for field in attrs.fields(DeviceGroups):
            items = value.get(field.name)
            if isinstance(items, list):
                groups[field.name] = tuple(
                    converter.structure(item, Device)
                    for item in items
                    if isinstance(item, dict) and item.get("serial_number")
                )
    return DeviceGroups(**groups)


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
_consume: Callable[[Iterable[Any]], None] = deque(maxlen=0).extend


def _intervals_hook(cls: type[Any]) -> Any:
    # The hot path of every telemetry call (672 intervals a week): one tight loop instead of
    # the generated per-item dispatch; it accepts the same shapes as the generated hook.
    fields = attrs.fields(cls)
    # Instances are filled through their slot descriptors, skipping the frozen __init__
    # (three times slower); that is only sound while the fields have nothing to run.
    assert [f.name for f in fields] == ["end_at", "charge", "discharge", "soc"]
    assert all(f.validator is None and f.converter is None for f in fields)
    set_end_at = cls.__dict__["end_at"].__set__
    set_charge = cls.__dict__["charge"].__set__
    set_discharge = cls.__dict__["discharge"].__set__
    set_soc = cls.__dict__["soc"].__set__
    new = object.__new__
    step = timedelta(seconds=_INTERVAL_S)

    def structure(value: Any, _type: Any) -> tuple[Any, ...]:
        try:
            fast = columns(value)
        except (KeyError, TypeError, ValueError):
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
        charges = [energy[r["devices_reporting"]][r["enwh"]] for r in map(_CHARGE, value)]
        discharges = [energy[r["devices_reporting"]][r["enwh"]] for r in map(_DISCHARGE, value)]
        soc_readings = [socs[r["devices_reporting"]][r["percent"]] for r in map(_SOC_FIELD, value)]
        # Consecutive intervals are 900 s apart: adding is cheaper than converting.
        end_dts = accumulate(
            repeat(step, count - 1), add, initial=datetime.fromtimestamp(first, UTC)
        )
        intervals = list(map(new, repeat(cls, count)))
        _consume(map(set_end_at, intervals, end_dts))
        _consume(map(set_charge, intervals, charges))
        _consume(map(set_discharge, intervals, discharges))
        _consume(map(set_soc, intervals, soc_readings))
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


def _warn_unknown(what: str, value: Any) -> None:
    _LOGGER.warning("unknown %s %r in a response; read as None", what, value)


def _or_none(parse: Any, what: str) -> Any:
    # A value the SDK can do without (a flag, a percentage, the granularity echoed) that
    # it cannot read becomes None, with the raw value in the log: never the whole answer
    # unreadable, which the poller would retry forever.
    def structure(value: Any, type_: Any) -> Any:
        try:
            return parse(value, type_)
        except (TypeError, ValueError):
            _warn_unknown(what, value)
            return None

    return structure


def _structure_granularity(value: Any, _type: Any) -> Granularity:
    member = _match(Granularity, str(value))
    if member is None:
        raise ValueError(f"unknown granularity {value!r}")
    return member


def _unstructure_time(value: time) -> int:
    return value.hour * 3600 + value.minute * 60 + value.second


def _lenient(parse: Any) -> Any:
    # A vocabulary the API grows (a new battery profile) must not make the whole answer
    # unreadable: the field becomes None, and the log says what was seen.
    def structure(value: Any, _type: Any) -> Any:
        try:
            return parse(str(value))
        except ValueError:
            _LOGGER.warning("unknown %s %r in a response; read as None", _type.__name__, value)
            return None

    return structure


def _is_optional(type_: Any) -> bool:
    args = typing.get_args(type_)
    is_union = isinstance(type_, types.UnionType) or typing.get_origin(type_) is typing.Union
    return is_union and len(args) == 2 and type(None) in args


def _optional_hook(conv: cattrs.Converter) -> Any:
    # cattrs looks the inner type's hook up again on every optional field of every answer;
    # most model fields are optional, so it is looked up once per type instead.
    def factory(union: Any) -> Any:
        inner = next(arg for arg in typing.get_args(union) if arg is not type(None))
        handler = conv.get_structure_hook(inner)

        def structure(value: Any, _type: Any) -> Any:
            return None if value is None else handler(value, inner)

        return structure

    return factory


#: Field types whose value is parsed from one string alone (a vocabulary word, a flag).
_WORDS: set[Any] = {Flag, BatteryMode, GridState, LoadControlMode}
_WORDS_MAX = 256
_MISSING: Any = object()
_FACTORY: type[Any] = type(attrs.Factory(list))


def _flat_hook(conv: cattrs.Converter, cls: type[Any]) -> Any:
    # A configuration answer is a handful of flat fields, read on every call: a function
    # generated for the model reads each field with the converter's own field hook, an
    # int taken as it is and a word parsed once (the answers repeat the same few), and
    # fills the instance through its slot descriptors.  Anything unusual (a missing
    # required field, a value a hook refuses, not a dict) goes to cattrs' generated hook,
    # which gives the same result or the same error.
    generated = make_dict_structure_fn(cls, conv)
    attrs.resolve_types(cls)
    fields = attrs.fields(cls)
    # Filling the slots skips __init__: only sound while it would run nothing else.
    assert not hasattr(cls, "__attrs_post_init__")
    assert all(f.init and not f.kw_only and f.validator is None for f in fields)
    assert all(f.converter is None and not isinstance(f.default, _FACTORY) for f in fields)
    namespace: dict[str, Any] = {
        "M": _MISSING,
        "new": object.__new__,
        "cls": cls,
        "generated": generated,
        "dict": dict,
        "int": int,
        "str": str,
    }
    lines = [
        "def structure(value, type_):",
        "    if type(value) is dict:",
        "        get = value.get",
        "        try:",
    ]
    for n, field in enumerate(fields):
        type_ = field.type
        inner = _inner(type_)
        namespace[f"hook{n}"] = conv.get_structure_hook(type_)
        namespace[f"type{n}"] = type_
        namespace[f"default{n}"] = field.default
        namespace[f"set{n}"] = cls.__dict__[field.name].__set__
        lines.append(f"            raw = get({field.name!r}, M)")
        if field.default is attrs.NOTHING:
            lines.append("            if raw is M: raise KeyError")
        else:
            lines.append(f"            if raw is M: f{n} = default{n}")
        if inner is int:
            lines.append(f"            elif type(raw) is int: f{n} = raw")
        elif inner in _WORDS:
            words: dict[str, Any] = {}
            namespace[f"words{n}"] = words
            namespace[f"word{n}"] = _word_parser(words, namespace[f"hook{n}"], type_)
            lines.append("            elif type(raw) is str:")
            lines.append(f"                f{n} = words{n}.get(raw, M)")
            lines.append(f"                if f{n} is M: f{n} = word{n}(raw)")
        lines.append(f"            else: f{n} = hook{n}(raw, type{n})")
    lines.append("            obj = new(cls)")
    lines.extend(f"            set{n}(obj, f{n})" for n in range(len(fields)))
    lines += ["            return obj", "        except Exception:", "            pass"]
    lines.append("    return generated(value, type_)")
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<flat structure {cls.__name__}>", "exec"), namespace)
    return namespace["structure"]


def _word_parser(words: dict[str, Any], hook: Any, type_: Any) -> Any:
    def parse(raw: str) -> Any:
        parsed = hook(raw, type_)
        if parsed is not None:  # unknown words are logged every time
            if len(words) >= _WORDS_MAX:
                words.clear()
            words[raw] = parsed
        return parsed

    return parse


def _inner(type_: Any) -> Any:
    """``X`` for ``X | None``, else ``type_``."""
    if _is_optional(type_):
        return next(arg for arg in typing.get_args(type_) if arg is not type(None))
    return type_


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=False)
    conv.register_structure_hook_factory(_is_optional, _optional_hook(conv))
    conv.register_structure_hook(datetime, _structure_datetime)
    conv.register_structure_hook(date, _structure_date)
    conv.register_structure_hook(int, _structure_int)
    # bool subclasses int: without its own hook it would get the int hook and refuse
    # every real boolean (Device.active is ``true`` in each /devices answer).
    conv.register_structure_hook(bool, _structure_flag)
    conv.register_structure_hook(Flag, _or_none(_structure_flag, "flag"))
    conv.register_structure_hook(Percent, _or_none(_structure_percent, "percentage"))
    conv.register_structure_hook(Granularity, _or_none(_structure_granularity, "granularity"))
    conv.register_structure_hook(BatteryMode, _lenient(BatteryMode.parse))
    conv.register_structure_hook(GridState, lambda v, _t: GridState.parse(str(v)))
    conv.register_structure_hook(LoadControlMode, _lenient(LoadControlMode.parse))
    conv.register_structure_hook(DeviceGroups, _structure_devices)
    # One live_data event -> a frame: hand-built, thousands a second.
    conv.register_structure_hook(LiveFrame, lambda v, _t: structure_live_frame(v))
    # The small configuration answers, one per call (after the field hooks they use).
    # Built on first use of each model (cattrs calls the factory once and keeps the hook):
    # generating them costs a few milliseconds of start-up otherwise.
    flat_models = (BatterySettings, StormGuard, GridStatus)
    conv.register_structure_hook_factory(lambda t: t in flat_models, lambda t: _flat_hook(conv, t))
    battery_intervals: Any = tuple[BatteryInterval, ...]
    encharge_intervals: Any = tuple[EnchargeInterval, ...]
    conv.register_structure_hook_func(
        lambda t: t == battery_intervals, _intervals_hook(BatteryInterval)
    )
    conv.register_structure_hook_func(
        lambda t: t == encharge_intervals, _intervals_hook(EnchargeInterval)
    )
    conv.register_unstructure_hook(datetime, lambda v: int(v.timestamp()))
    conv.register_unstructure_hook(date, lambda v: v.isoformat())
    conv.register_unstructure_hook(time, _unstructure_time)
    return conv


#: The one converter for JSON in and out.
converter = _make_converter()
