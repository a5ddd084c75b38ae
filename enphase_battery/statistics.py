"""Hourly energy that adds up: intervals in, Home Assistant-shaped hourly rows out.

What lives here: :class:`HourlyRow` (one hour of one stream: its energy, the running
sums since the stream's start, the state of charge), :class:`StatisticPoint` (a row in
the shape of Home Assistant's long-term statistics), :class:`HourlyEnergy` (the
incremental aggregator: intervals arrive late, out of order and revised; it says which
rows to (re-)emit, and its state saves to a compact JSON string) and :func:`hourly_rows`
(the same rows from a finished set of intervals, in one pass).

Pure code over :class:`~enphase_battery.poll.stream_log.TelemetryInterval`: no I/O, no clock.  It
imports only the streams/models level of the package, never the poller, the client or
the CLI, so a consumer (a Home Assistant integration, the CLI) can use it on intervals
from anywhere.

Rules every row follows:

* An interval belongs to the hour containing its *start* (``end_at - 15 min``, floored to
  the hour, UTC): ``end_at`` 10:15 is in hour 10:00, and so is ``end_at`` 11:00.
* Of the intervals sharing ``(system_id, source, end_at)`` the highest ``revision``
  counts (an equal one replaces the earlier: an upsert); a lower one changes nothing.
* A stream's running sums (``charge_sum_wh``, ``discharge_sum_wh``) count from zero
  before *the stream's start*: the earliest hour with data of that stream.  An interval
  earlier than that (arriving late) moves the start back, and every later sum changes.
* Only hours with at least one interval have a row; a gap has none (and no sum jumps
  over it: the next row's sum is the previous one plus its own hour).
"""

from __future__ import annotations

import json
import logging
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import attrs

from enphase_battery.models.delivered import INTERVAL_S, StreamKey, TelemetryInterval

__all__ = [
    "DEFAULT_HORIZON",
    "STATE_VERSION",
    "HourlyEnergy",
    "HourlyRow",
    "StatisticPoint",
    "hour_of",
    "hourly_rows",
]

_LOGGER = logging.getLogger(__name__)

_HOUR_S = 3600
#: How far behind a stream's newest hour :class:`HourlyEnergy` keeps per-interval detail
#: by default: 8 days, a day more than the pollers' longest ``late_horizon`` (7 days).
DEFAULT_HORIZON = timedelta(days=8)
#: The ``"v"`` of :meth:`HourlyEnergy.to_json`; :meth:`HourlyEnergy.from_json` refuses
#: any other.
STATE_VERSION = 1


def hour_of(interval: TelemetryInterval) -> datetime:
    """The start (UTC, on the hour) of the hour the interval belongs to: the hour of its
    start, ``end_at - 15 min``."""
    return _to_datetime(_hour_index(int(interval.end_at.timestamp())) * _HOUR_S)


@attrs.frozen
class StatisticPoint:
    """One hour of one statistic in the shape of Home Assistant's long-term statistics
    (``StatisticData``): ``start`` plus the fields that statistic has, the others ``None``.

    Energy (``has_sum``, unit Wh): ``state`` and ``sum`` are both the running sum since
    the stream's start at the end of the hour (a meter that started at zero with the
    stream); the hour's energy is the difference of two consecutive sums.  State of
    charge (``has_mean``, unit %): ``mean``, ``min`` and ``max`` over the hour's
    intervals (``None`` when none of them carried a state of charge).
    """

    start: datetime
    state: float | None = None
    sum: float | None = None
    mean: float | None = None
    min: float | None = None
    max: float | None = None


@attrs.frozen
class HourlyRow:
    """One hour of one stream.  Upsert it on ``(system_id, source, start)``: a later row
    with the same key replaces the earlier one.

    Attributes:
        system_id: the system.
        source: ``"battery"`` or an Encharge serial number, as in the intervals.
        start: start of the hour (tz-aware UTC, on the hour); the hour covers
            ``[start, start + 1 h)`` by its intervals' starts.
        charge_wh / discharge_wh: energy into / out of the battery in the hour.
        charge_sum_wh / discharge_sum_wh: running sums from the stream's start through
            this hour inclusive.
        soc_mean / soc_min / soc_max: state of charge (%) over the hour's intervals that
            carry one (their values at each interval's end); ``None`` when none does.
        intervals: how many intervals the hour holds (4 when complete).
        partial: whether any of them came out ``partial`` (not every device reported).
    """

    system_id: int
    source: str
    start: datetime
    charge_wh: int
    discharge_wh: int
    charge_sum_wh: int
    discharge_sum_wh: int
    soc_mean: float | None
    soc_min: int | None
    soc_max: int | None
    intervals: int
    partial: bool

    @property
    def key(self) -> tuple[int, str, datetime]:
        """``(system_id, source, start)``: what a consumer upserts on."""
        return (self.system_id, self.source, self.start)

    @property
    def charged(self) -> StatisticPoint:
        """Energy charged, as a Home Assistant ``sum`` statistic (Wh)."""
        return StatisticPoint(self.start, state=self.charge_sum_wh, sum=self.charge_sum_wh)

    @property
    def discharged(self) -> StatisticPoint:
        """Energy discharged, as a Home Assistant ``sum`` statistic (Wh)."""
        return StatisticPoint(self.start, state=self.discharge_sum_wh, sum=self.discharge_sum_wh)

    @property
    def soc(self) -> StatisticPoint:
        """State of charge, as a Home Assistant ``mean`` statistic (%)."""
        return StatisticPoint(self.start, mean=self.soc_mean, min=self.soc_min, max=self.soc_max)


class _Reading(NamedTuple):
    """What an hour keeps of one interval (its newest revision)."""

    revision: int
    charge_wh: int
    discharge_wh: int
    soc_percent: int | None
    partial: bool


def _hour_index(end_s: int) -> int:
    """The hour (epoch seconds // 3600) of the interval ending at ``end_s``."""
    return (end_s - INTERVAL_S) // _HOUR_S


def _to_datetime(epoch_s: int) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def _reading(interval: TelemetryInterval) -> _Reading:
    return _Reading(
        interval.revision,
        interval.charge_wh,
        interval.discharge_wh,
        interval.soc_percent,
        interval.partial,
    )


def _row(
    key: StreamKey,
    hour: int,
    readings: Iterable[_Reading],
    charge_before: int,
    discharge_before: int,
) -> HourlyRow:
    """The row of one hour, its sums counted on from the previous hour's."""
    charge = discharge = count = 0
    partial = False
    socs: list[int] = []
    for reading in readings:
        charge += reading.charge_wh
        discharge += reading.discharge_wh
        count += 1
        partial = partial or reading.partial
        if reading.soc_percent is not None:
            socs.append(reading.soc_percent)
    return HourlyRow(
        system_id=key[0],
        source=key[1],
        start=_to_datetime(hour * _HOUR_S),
        charge_wh=charge,
        discharge_wh=discharge,
        charge_sum_wh=charge_before + charge,
        discharge_sum_wh=discharge_before + discharge,
        soc_mean=sum(socs) / len(socs) if socs else None,
        soc_min=min(socs) if socs else None,
        soc_max=max(socs) if socs else None,
        intervals=count,
        partial=partial,
    )


def hourly_rows(intervals: Iterable[TelemetryInterval]) -> list[HourlyRow]:
    """Every hourly row of a finished set of intervals, in one pass: for each stream (in
    order of first appearance) its rows in ascending ``start``.

    Of the intervals sharing ``(system_id, source, end_at)`` the highest ``revision``
    counts (the later of equal ones); sums start at each stream's earliest hour.  What
    :class:`HourlyEnergy`'s last row of each key equals, whatever the arrival order.
    """
    latest: dict[StreamKey, dict[int, _Reading]] = {}
    for interval in intervals:
        readings = latest.setdefault((interval.system_id, interval.source), {})
        end_s = int(interval.end_at.timestamp())
        known = readings.get(end_s)
        if known is None or interval.revision >= known.revision:
            readings[end_s] = _reading(interval)
    rows: list[HourlyRow] = []
    for key, readings in latest.items():
        by_hour: dict[int, list[_Reading]] = {}
        for end_s in sorted(readings):
            by_hour.setdefault(_hour_index(end_s), []).append(readings[end_s])
        charge_sum = discharge_sum = 0
        for hour in sorted(by_hour):
            row = _row(key, hour, by_hour[hour], charge_sum, discharge_sum)
            charge_sum, discharge_sum = row.charge_sum_wh, row.discharge_sum_wh
            rows.append(row)
    return rows


class _StreamHours:
    """One stream's recent hours (per-interval detail) over a folded base."""

    __slots__ = (
        "base_charge_wh",
        "base_discharge_wh",
        "folded_through",
        "hours",
        "key",
        "order",
        "rows",
    )

    def __init__(self, key: StreamKey) -> None:
        self.key = key
        #: hour -> end_at (epoch s) -> reading.
        self.hours: dict[int, dict[int, _Reading]] = {}
        #: The hours of ``hours``, ascending.
        self.order: list[int] = []
        #: hour -> its current row (what was last emitted for it).
        self.rows: dict[int, HourlyRow] = {}
        #: Sums through ``folded_through`` (hours whose detail was let go).
        self.base_charge_wh = 0
        self.base_discharge_wh = 0
        #: Hours up to this one are final (folded into the base, or empty when the
        #: horizon passed them): an interval in them is dropped.  ``None`` at first.
        self.folded_through: int | None = None

    def put(self, end_s: int, reading: _Reading) -> int | None:
        """Store a reading; the hour it changed, or ``None`` when it changed nothing."""
        hour = _hour_index(end_s)
        readings = self.hours.get(hour)
        if readings is None:
            readings = self.hours[hour] = {}
            insort(self.order, hour)
        else:
            known = readings.get(end_s)
            if known is not None and (reading.revision < known.revision or reading == known):
                return None
        readings[end_s] = reading
        return hour

    def rebuild_from(self, first: int) -> list[HourlyRow]:
        """Recompute the rows of hours ``>= first``; those that differ from before."""
        at = bisect_left(self.order, first)
        if at:
            before = self.rows[self.order[at - 1]]
            charge_sum, discharge_sum = before.charge_sum_wh, before.discharge_sum_wh
        else:
            charge_sum, discharge_sum = self.base_charge_wh, self.base_discharge_wh
        changed: list[HourlyRow] = []
        for hour in self.order[at:]:
            row = _row(self.key, hour, self.hours[hour].values(), charge_sum, discharge_sum)
            charge_sum, discharge_sum = row.charge_sum_wh, row.discharge_sum_wh
            if self.rows.get(hour) != row:
                self.rows[hour] = row
                changed.append(row)
        return changed

    def fold(self, horizon_h: int) -> None:
        """Let go of the detail of hours more than ``horizon_h`` behind the newest."""
        if not self.order:
            return
        oldest_kept = self.order[-1] - horizon_h + 1
        if self.folded_through is None or self.folded_through < oldest_kept - 1:
            self.folded_through = oldest_kept - 1
        cut = bisect_left(self.order, oldest_kept)
        if not cut:
            return
        last = self.rows[self.order[cut - 1]]
        self.base_charge_wh, self.base_discharge_wh = last.charge_sum_wh, last.discharge_sum_wh
        for hour in self.order[:cut]:
            del self.hours[hour]
            del self.rows[hour]
        del self.order[:cut]

    def to_data(self) -> dict[str, Any]:
        readings = [
            [end_s, *reading]
            for hour in self.order
            for end_s, reading in sorted(self.hours[hour].items())
        ]
        return {
            "system_id": self.key[0],
            "source": self.key[1],
            "base": [self.base_charge_wh, self.base_discharge_wh],
            "folded_through": self.folded_through,
            "intervals": readings,
        }

    @classmethod
    def from_data(cls, data: Any) -> _StreamHours:
        """Inverse of :meth:`to_data` (``TypeError`` / ``KeyError`` / ``ValueError`` on
        anything else)."""
        system_id, source = data["system_id"], data["source"]
        if not isinstance(system_id, int) or not isinstance(source, str):
            raise TypeError("system_id and source")
        stream = cls((system_id, source))
        charge, discharge = data["base"]
        stream.base_charge_wh, stream.base_discharge_wh = int(charge), int(discharge)
        folded = data["folded_through"]
        stream.folded_through = None if folded is None else int(folded)
        for end_s, revision, charge_wh, discharge_wh, soc, partial in data["intervals"]:
            reading = _Reading(
                int(revision),
                int(charge_wh),
                int(discharge_wh),
                None if soc is None else int(soc),
                bool(partial),
            )
            stream.put(int(end_s), reading)
        if stream.order:
            stream.rebuild_from(stream.order[0])
        return stream


class HourlyEnergy:
    """Hourly rows from a stream of intervals that arrive late, out of order, repeated
    and revised: each :meth:`add` returns the rows to (re-)emit.

    Feed it every interval the poller delivers (``add`` or ``add_many``); write what it
    returns with an upsert on ``(system_id, source, start)``.  What it returns: the row
    of every hour the intervals changed, and the row of every later hour of the same
    stream whose running sum changed with it (all later hours when the energy changed;
    none when only the state of charge or the count did), ascending per stream.  An
    interval that changes nothing (a repeat, an older revision) returns nothing.  So the
    last row a consumer holds for each key always equals :func:`hourly_rows` of the
    newest revision of every interval seen, whatever the arrival order.

    Memory is bounded: per-interval detail is kept for ``horizon`` (default 8 days)
    behind each stream's newest hour; older hours are folded into a base sum and their
    rows are final.  An interval older than that (the pollers never emit one: their
    ``late_horizon`` is at most 7 days) cannot be placed: it is dropped, logged and
    counted in :attr:`dropped`.  ``horizon`` must exceed the poller's late horizon and
    the time over which it revises partial intervals.

    The state saves to a compact JSON string (:meth:`to_json`, versioned) and comes back
    with :meth:`from_json`: save it in the same transaction as the poller's checkpoint
    and a restart continues exactly where the saved state stood.
    """

    def __init__(self, *, horizon: timedelta = DEFAULT_HORIZON) -> None:
        horizon_h = int(horizon.total_seconds()) // _HOUR_S
        if horizon_h < 1:
            raise ValueError(f"horizon must be at least one hour, not {horizon}")
        self.horizon = timedelta(hours=horizon_h)
        self._horizon_h = horizon_h
        self._streams: dict[StreamKey, _StreamHours] = {}
        #: Intervals dropped because they were older than the horizon allows (not saved
        #: with the state).
        self.dropped = 0

    def __repr__(self) -> str:
        return f"HourlyEnergy({len(self._streams)} streams, horizon={self.horizon})"

    @property
    def streams(self) -> tuple[StreamKey, ...]:
        """The ``(system_id, source)`` of every stream seen, in order of first arrival."""
        return tuple(self._streams)

    def add(self, interval: TelemetryInterval) -> list[HourlyRow]:
        """Take one interval; the rows to (re-)emit, ascending (see :class:`HourlyEnergy`)."""
        return self.add_many((interval,))

    def add_many(self, intervals: Iterable[TelemetryInterval]) -> list[HourlyRow]:
        """Take several intervals (a poller's batch); the rows to (re-)emit, each key
        once with its value after all of them, ascending per stream, streams in the
        order they first appear.  The horizon moves after the whole batch, so a batch
        holding a late interval and newer ones places the late one."""
        first_changed: dict[StreamKey, int] = {}
        for interval in intervals:
            key = (interval.system_id, interval.source)
            stream = self._streams.get(key)
            if stream is None:
                stream = self._streams[key] = _StreamHours(key)
            end_s = int(interval.end_at.timestamp())
            folded = stream.folded_through
            if folded is not None and _hour_index(end_s) <= folded:
                self.dropped += 1
                _LOGGER.warning(
                    "hourly energy: dropped %s/%s ending %s: older than the %s kept",
                    key[0],
                    key[1],
                    interval.end_at.isoformat(),
                    self.horizon,
                )
                continue
            hour = stream.put(end_s, _reading(interval))
            if hour is not None and hour < first_changed.get(key, hour + 1):
                first_changed[key] = hour
        rows: list[HourlyRow] = []
        for key, first in first_changed.items():
            stream = self._streams[key]
            rows += stream.rebuild_from(first)
            stream.fold(self._horizon_h)
        return rows

    def rows(self, key: StreamKey | None = None) -> list[HourlyRow]:
        """The current rows of the hours still within the horizon (of one stream, or of
        all, ascending per stream): what a consumer that missed nothing holds for them."""
        keys = self._streams if key is None else (key,) if key in self._streams else ()
        return [row for k in keys for row in self._iter_rows(self._streams[k])]

    @staticmethod
    def _iter_rows(stream: _StreamHours) -> Iterator[HourlyRow]:
        return (stream.rows[hour] for hour in stream.order)

    def to_json(self, streams: Iterable[StreamKey] | None = None) -> str:
        """The state as compact JSON (``{"v": 1, "streams": [...]}``): of every stream,
        or of the ones given (to save only those a batch touched, one row per stream;
        :meth:`from_json` joins them again)."""
        keys = self._streams if streams is None else streams
        data = [self._streams[key].to_data() for key in keys if key in self._streams]
        return json.dumps({"v": STATE_VERSION, "streams": data}, separators=(",", ":"))

    @classmethod
    def from_json(cls, *documents: str, horizon: timedelta = DEFAULT_HORIZON) -> HourlyEnergy:
        """An aggregator with the state of :meth:`to_json` documents (each holding some
        streams; a stream in several: the last counts).  ``ValueError`` on anything
        that is not such a document, or of another version."""
        energy = cls(horizon=horizon)
        for text in documents:
            try:
                data = json.loads(text)
                version = data.get("v")
                if version != STATE_VERSION:
                    raise ValueError(f"version {version!r}, not {STATE_VERSION}")
                for item in data["streams"]:
                    stream = _StreamHours.from_data(item)
                    stream.fold(energy._horizon_h)
                    energy._streams[stream.key] = stream
            except (TypeError, KeyError, AttributeError, ValueError) as err:
                raise ValueError(f"not an hourly energy state: {text[:80]!r} ({err})") from err
        return energy
