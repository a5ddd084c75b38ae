"""Models of the live stream: one typed :class:`LiveFrame` per moment, live or polled."""

from __future__ import annotations

import enum
import logging
from datetime import UTC, datetime
from typing import Any

import attrs

from enphase_battery.models.vocabulary import BatteryMode, BatteryState, GridState
from enphase_battery.util.slots import slot_setters

__all__ = ["LiveFrame", "LiveSource", "structure_live_frame"]

_LOGGER = logging.getLogger(__name__)


class LiveSource(enum.StrEnum):
    """Where a frame came from."""

    #: The ``live_data`` stream (Kilowatt plan and up, billed per connection).
    LIVE = "live"
    #: A ``latest_telemetry`` poll (the fallback; fewer fields, 15-minute-ish freshness).
    LATEST = "latest"


@attrs.frozen
class LiveFrame:
    """What the battery and site do at ``timestamp``.

    Built from one ``live_data`` event, ``{"data": {"pv_power", "grid_power",
    "battery_power", "battery_soc", "battery_mode", "grid_status", "consumption_power",
    "generator_power", "envoy_serial_number": [...]}, "timestamp_epoch": <ms>, "type"}``
    (fact sheet §8), by ``converter.structure(event, LiveFrame)``.

    ``source`` says whether it came from the live stream or a ``latest_telemetry`` poll;
    polled frames carry only ``battery_power`` (the rest ``None``: ``latest_telemetry``
    has no profile, SoC or grid), and their ``timestamp`` is the Encharges' last report.
    Powers are W.  ``battery_power`` is positive while the batteries discharge, as the
    spec says of ``live_data`` [confirmed: fact sheet §8]; a polled frame's is built the
    same way, from each Encharge's state and the magnitude of its power.
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
        return self.battery_power

    @property
    def battery_state(self) -> BatteryState | None:
        """Charging, discharging or idle, from the direction of ``battery_power``."""
        return _state_of(self.battery_power)


def _state_of(discharge_w: int | None) -> BatteryState | None:
    if discharge_w is None:
        return None
    if discharge_w > 0:
        return BatteryState.DISCHARGING
    return BatteryState.CHARGING if discharge_w < 0 else BatteryState.IDLE


# -- the hot path: one event -> one frame, several thousand a second -----------------------

#: Spellings seen -> parsed vocabulary (the loose parse is a regex per member: too slow per
#: frame).  Bounded: cleared whole when full.
_MODES: dict[str, BatteryMode | None] = {}
_GRIDS: dict[str, GridState] = {}
_CACHE_MAX = 256
_SECONDS_BELOW = 100_000_000_000


def _mode(value: Any) -> BatteryMode | None:
    if value is None:
        return None
    text = str(value)
    try:
        return _MODES[text]
    except KeyError:
        pass
    try:
        mode: BatteryMode | None = BatteryMode.parse(text)
    except ValueError:
        _LOGGER.warning("unknown battery_mode %r in live data; read as None", text)
        mode = None
    if len(_MODES) >= _CACHE_MAX:
        _MODES.clear()
    _MODES[text] = mode
    return mode


def _grid(value: Any) -> GridState | None:
    if value is None:
        return None
    text = str(value)
    grid = _GRIDS.get(text)
    if grid is None:
        if len(_GRIDS) >= _CACHE_MAX:
            _GRIDS.clear()
        grid = _GRIDS[text] = GridState.parse(text)
    return grid


def _int(value: Any) -> int | None:
    if type(value) is int or value is None:
        return value
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, float):
        return round(value)
    if isinstance(value, str):
        return round(float(value.strip().rstrip("%")))
    raise TypeError(f"not a number: {value!r}")


def _timestamp(value: Any) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        # [secondary] milliseconds; a value too small for milliseconds of this century is
        # read as seconds.
        seconds = value if value < _SECONDS_BELOW else value / 1000
        return datetime.fromtimestamp(seconds, UTC)
    if value is None:
        # No timestamp: the moment it arrived is the best there is.
        return datetime.now(UTC)
    raise TypeError(f"timestamp_epoch is not a number: {value!r}")


def _serials(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if type(value) is list:
        return tuple(map(str, value))
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return (str(value),)


# The frozen __init__ writes each of the twelve fields through object.__setattr__; the
# slot setters write them for a fraction of that (a third of a frame's cost otherwise).
(
    _SET_TIMESTAMP,
    _SET_SOURCE,
    _SET_SOC,
    _SET_BATTERY_POWER,
    _SET_MODE,
    _SET_GRID_STATUS,
    _SET_PV_POWER,
    _SET_GRID_POWER,
    _SET_CONSUMPTION_POWER,
    _SET_GENERATOR_POWER,
    _SET_SERIALS,
    _SET_EVENT_ID,
) = slot_setters(
    LiveFrame,
    "timestamp",
    "source",
    "battery_soc",
    "battery_power",
    "battery_mode",
    "grid_status",
    "pv_power",
    "grid_power",
    "consumption_power",
    "generator_power",
    "envoy_serial_numbers",
    "event_id",
)
assert not hasattr(LiveFrame, "__attrs_post_init__")
_new = object.__new__
_LIVE = LiveSource.LIVE


def structure_live_frame(body: Any, event_id: str | None = None) -> LiveFrame:
    """The frame of one ``live_data`` event's JSON (raises ``TypeError``/``ValueError``)."""
    inner = body["data"]
    if type(inner) is not dict:
        raise TypeError("the event's data is not an object")
    get = inner.get
    # Every value read (and checked) before the frame exists: an error leaves nothing.
    timestamp = _timestamp(body.get("timestamp_epoch"))
    soc = get("battery_soc")
    battery_power = get("battery_power")
    pv_power = get("pv_power")
    grid_power = get("grid_power")
    consumption_power = get("consumption_power")
    generator_power = get("generator_power")
    if type(soc) is not int:
        soc = _int(soc)
    if type(battery_power) is not int:
        battery_power = _int(battery_power)
    if type(pv_power) is not int:
        pv_power = _int(pv_power)
    if type(grid_power) is not int:
        grid_power = _int(grid_power)
    if type(consumption_power) is not int:
        consumption_power = _int(consumption_power)
    if type(generator_power) is not int:
        generator_power = _int(generator_power)
    mode = get("battery_mode")
    if mode is not None:
        mode = _MODES[mode] if type(mode) is str and mode in _MODES else _mode(mode)
    grid = get("grid_status")
    if grid is not None:
        cached = _GRIDS.get(grid) if type(grid) is str else None
        grid = cached if cached is not None else _grid(grid)
    serials = _serials(get("envoy_serial_number"))
    frame = _new(LiveFrame)
    _SET_TIMESTAMP(frame, timestamp)
    _SET_SOURCE(frame, _LIVE)
    _SET_SOC(frame, soc)
    _SET_BATTERY_POWER(frame, battery_power)
    _SET_MODE(frame, mode)
    _SET_GRID_STATUS(frame, grid)
    _SET_PV_POWER(frame, pv_power)
    _SET_GRID_POWER(frame, grid_power)
    _SET_CONSUMPTION_POWER(frame, consumption_power)
    _SET_GENERATOR_POWER(frame, generator_power)
    _SET_SERIALS(frame, serials)
    _SET_EVENT_ID(frame, event_id)
    return frame
