"""The one ``cattrs`` converter for JSON in and out, with the API's quirks as hooks."""

from __future__ import annotations

import logging
import types
import typing
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from enphase_battery.models._intervals import _intervals_hook
from enphase_battery.models._scalars import (
    _structure_date,
    _structure_datetime,
    _structure_flag,
    _structure_int,
    _structure_percent,
    _warn_unknown,
)
from enphase_battery.models.commissioning import (
    BatteryModeSettings,
    Tariff,
    TariffDayGroup,
    TariffPeriod,
)
from enphase_battery.models.config import BatterySettings, GridStatus, StormGuard
from enphase_battery.models.discovery import Device, DeviceGroups
from enphase_battery.models.live import LiveFrame, structure_live_frame
from enphase_battery.models.telemetry import BatteryInterval, EnchargeInterval
from enphase_battery.models.vocabulary import (
    BatteryMode,
    BatteryState,
    Flag,
    Granularity,
    GridState,
    LoadControlMode,
    Percent,
    _match,
)

__all__ = ["converter"]

_LOGGER = logging.getLogger("enphase_battery.models.converter")


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


def _structure_decimal(value: Any, _type: Any) -> Decimal:
    # Tariff rates come as strings ("0.25"); a number is read through its text so that
    # 0.1 stays 0.1.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(f"not a decimal number: {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a decimal number: {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number


def _minutes_to_time(value: Any, _type: Any) -> time | None:
    # A tariff period's start: minutes after midnight (an int, or its string).
    if value is None:
        return None
    minutes = _structure_int(value, int)
    if not 0 <= minutes < 1440:
        _warn_unknown("period start (minutes after midnight)", value)
        return None
    return time(minutes // 60, minutes % 60)


def _day_names(value: Any, _type: Any) -> tuple[str, ...]:
    # "Mon,Tue,Wed" (the API's spelling); a list is taken as it is.
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(day.strip() for day in value.split(",") if day.strip())
    if isinstance(value, list):
        return tuple(str(day) for day in value)
    raise TypeError(f"not a list of days: {value!r}")


def _tariff_hook(conv: cattrs.Converter) -> Any:
    generated = make_dict_structure_fn(Tariff, conv)

    def structure(value: Any, type_: Any) -> Tariff:
        # The example sends ``currency: {code}``, the schema ``currency_type: {code}``.
        if isinstance(value, dict) and ("currency" in value or "currency_type" in value):
            holder = value.get("currency") or value.get("currency_type")
            code = holder.get("code") if isinstance(holder, dict) else holder
            value = {**value, "currency": code if isinstance(code, str) else None}
        result: Tariff = generated(value, type_)
        return result

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
_WORDS: set[Any] = {Flag, BatteryMode, BatteryState, GridState, LoadControlMode}
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
    conv.register_structure_hook(BatteryState, lambda v, _t: BatteryState.parse(str(v)))
    conv.register_structure_hook(LoadControlMode, _lenient(LoadControlMode.parse))
    conv.register_structure_hook(DeviceGroups, _structure_devices)
    # The Commissioning API: tariff rates, period starts, day lists and CFG/DTG names.
    conv.register_structure_hook(Decimal, _or_none(_structure_decimal, "rate"))
    conv.register_structure_hook(Tariff, _tariff_hook(conv))
    conv.register_structure_hook(
        TariffPeriod,
        make_dict_structure_fn(
            TariffPeriod, conv, start=override(struct_hook=_or_none(_minutes_to_time, "start"))
        ),
    )
    conv.register_structure_hook(
        TariffDayGroup,
        make_dict_structure_fn(TariffDayGroup, conv, days=override(struct_hook=_day_names)),
    )
    conv.register_structure_hook(
        BatteryModeSettings,
        make_dict_structure_fn(
            BatteryModeSettings,
            conv,
            cfg_allowed=override(rename="CFG_allowed"),
            dtg_allowed=override(rename="DTG_allowed"),
        ),
    )
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
