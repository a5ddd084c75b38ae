"""The per-stream logic of the poller: pure code over a watermark and windows of intervals.

No I/O and no clock here: a :class:`StreamLog` is told what the API answered and what the
consumer took, and says what to deliver next and how far the watermark may move.  The
one-system :class:`~enphase_battery.TelemetryPoller` and a multi-system engine feed the
same logs, keyed by ``(system_id, source)``.

* **Watermark**: every interval ending at or before it is done.  Intervals delivered
  past a gap (out of order) are remembered in ``delivered`` until the gap fills or is
  given up, so nothing comes twice.
* **Partial intervals** (``devices_reporting`` below the total) are held back until
  complete, or until older than ``settle`` relative to the newest interval the API has
  shown; then they come out once, flagged ``partial``.
* **Revisions**: an interval that went out partial is re-read while it is younger than
  ``revise_for`` (relative to the newest data, like ``settle``); a re-read whose values
  differ goes out again, ``revision`` counting up.  The revisions still possible are part
  of the stream's state (:class:`~enphase_battery.store.checkpoint.PendingRevision`), so exactly
  once holds per ``(interval, revision)`` across restarts.
* **Late intervals**: a gap older than ``late_horizon`` relative to the newest data is
  given up: the API has nothing there.
* **Bogus intervals** (outside the window asked for, or later than the answer's own
  window end or the server's "now" allows) are dropped with a warning: they never reach
  the consumer and never move a watermark.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import accumulate, islice, repeat
from operator import add, attrgetter, ge, itemgetter, lt
from typing import NamedTuple

import attrs

from enphase_battery.models import BatteryInterval, BatteryTelemetry, EnchargeTelemetry
from enphase_battery.models.delivered import BATTERY, INTERVAL_S, StreamKey, TelemetryInterval
from enphase_battery.store.checkpoint import PendingRevision, StreamState, make_state
from enphase_battery.util.slots import consume, slot_setters

__all__ = [
    "BATTERY",
    "INTERVAL_S",
    "Accepted",
    "StreamKey",
    "StreamLog",
    "TelemetryInterval",
    "checkpoint_key",
    "end_times",
    "first_interval_hint",
    "to_intervals",
]

_LOGGER = logging.getLogger("enphase_battery.streams")

_FIRST_INTERVAL = re.compile(r"first_interval\D{0,8}(\d{9,11})")


def checkpoint_key(key: StreamKey) -> str:
    """The checkpoint store's key of a stream: ``"{system_id}/{source}"``."""
    return f"{key[0]}/{key[1]}"


def to_intervals(
    system_id: int, source: str, response: BatteryTelemetry | EnchargeTelemetry
) -> list[TelemetryInterval]:
    """The intervals of one telemetry answer, as the poller delivers them."""
    items = response.intervals
    count = len(items)
    if not count:
        return []
    # An Encharge's own interval covers that one device.
    if isinstance(response, BatteryTelemetry):
        total, reporting = response.total_devices, _reporting(response.intervals)
    else:
        total, reporting = 1, [1] * count
    # Column by column (a week is 672 intervals, each one of the poller's hot path): the
    # same instances the frozen __init__ makes, filled through the slot descriptors in
    # C-level maps instead of nine attribute writes per interval in Python.
    built = list(map(_NEW, repeat(TelemetryInterval, count)))
    consume(map(_SET_SYSTEM_ID, built, repeat(system_id, count)))
    consume(map(_SET_SOURCE, built, repeat(source, count)))
    consume(map(_SET_END_AT, built, map(_END_AT, items)))
    consume(map(_SET_CHARGE, built, map(_CHARGE_WH, items)))
    consume(map(_SET_DISCHARGE, built, map(_DISCHARGE_WH, items)))
    consume(map(_SET_SOC, built, map(_SOC_PERCENT, items)))
    consume(map(_SET_DEVICES_REPORTING, built, reporting))
    consume(map(_SET_TOTAL_DEVICES, built, repeat(total, count)))
    consume(map(_SET_PARTIAL, built, repeat(False, count)))
    consume(map(_SET_REVISION, built, repeat(0, count)))
    return built


def _reporting(items: Sequence[BatteryInterval]) -> list[int | None]:
    """``devices_reporting`` of each battery interval."""
    charge = list(map(_CHARGE_REPORTING, items))
    # Nearly always one count for all three readings: three columns and two comparisons
    # instead of the property's work per interval.
    if charge == list(map(_DISCHARGE_REPORTING, items)) == list(map(_SOC_REPORTING, items)):
        return charge
    return list(map(_DEVICES_REPORTING, items))


(
    _SET_SYSTEM_ID,
    _SET_SOURCE,
    _SET_END_AT,
    _SET_CHARGE,
    _SET_DISCHARGE,
    _SET_SOC,
    _SET_DEVICES_REPORTING,
    _SET_TOTAL_DEVICES,
    _SET_PARTIAL,
    _SET_REVISION,
) = slot_setters(
    TelemetryInterval,
    "system_id",
    "source",
    "end_at",
    "charge_wh",
    "discharge_wh",
    "soc_percent",
    "devices_reporting",
    "total_devices",
    "partial",
    "revision",
)
_NEW = object.__new__
_END_AT = attrgetter("end_at")
_CHARGE_WH = attrgetter("charge.enwh")
_DISCHARGE_WH = attrgetter("discharge.enwh")
_SOC_PERCENT = attrgetter("soc.percent")
_DEVICES_REPORTING = attrgetter("devices_reporting")
_CHARGE_REPORTING = attrgetter("charge.devices_reporting")
_DISCHARGE_REPORTING = attrgetter("discharge.devices_reporting")
_SOC_REPORTING = attrgetter("soc.devices_reporting")
_TOTAL_DEVICES = attrgetter("total_devices")
_TIMESTAMP = datetime.timestamp
_FIRST = itemgetter(0)
_STEP = timedelta(seconds=INTERVAL_S)


def _complete(iv: TelemetryInterval) -> bool:
    """Whether every battery the interval counts has reported it (or the API says
    nothing of how many did)."""
    return (
        iv.devices_reporting is None
        or iv.total_devices is None
        or iv.devices_reporting >= iv.total_devices
    )


def _pending(end: int, revision: int, iv: TelemetryInterval) -> PendingRevision:
    return PendingRevision(
        end, revision, iv.charge_wh, iv.discharge_wh, iv.soc_percent, iv.devices_reporting
    )


def first_interval_hint(text: str) -> int | None:
    """The stream's first interval start (epoch, on the 15-minute grid) named by a 422."""
    match = _FIRST_INTERVAL.search(text)
    if match is None:
        return None
    first = int(match.group(1))
    return first - first % INTERVAL_S


class Accepted(NamedTuple):
    """What :meth:`StreamLog.accept` takes from one answer: the intervals to deliver
    now (ascending) and their end times (epoch seconds), index for index."""

    intervals: list[TelemetryInterval]
    ends: list[int]


def end_times(intervals: Sequence[TelemetryInterval]) -> list[int]:
    """The end times of ``intervals`` in epoch seconds."""
    first = intervals[0].end_at
    count = len(intervals)
    # An answer's intervals are nearly always consecutive: checking that with datetime
    # sums and comparisons (C, same tzinfo) costs half of a timestamp() each.
    expected = list(accumulate(repeat(_STEP, count - 1), add, initial=first))
    if list(map(_END_AT, intervals)) == expected:
        base = int(first.timestamp())
        return list(range(base, base + INTERVAL_S * count, INTERVAL_S))
    return list(map(int, map(_TIMESTAMP, map(_END_AT, intervals))))


class StreamLog:
    """Bookkeeping of one stream: what is done, queued for the consumer, held back."""

    __slots__ = (
        "covered",
        "cursor",
        "delivered",
        "dirty",
        "held",
        "in_flight",
        "newest",
        "queued",
        "revising",
        "source",
        "store_key",
        "system_id",
        "watermark",
    )

    def __init__(self, key: StreamKey, state: StreamState | None) -> None:
        self.system_id, self.source = key
        self.store_key = checkpoint_key(key)
        self.watermark: int | None = state.watermark if state else None
        self.delivered: set[int] = set(state.delivered) if state else set()
        self.queued: set[int] = set()
        self.held: set[int] = set()
        #: Intervals that went out partial and may still be revised, by end: what the
        #: consumer has of each (committed; part of the saved state).
        self.revising: dict[int, PendingRevision] = (
            {p.end: p for p in state.revising} if state else {}
        )
        #: Partial intervals and revisions queued or in the consumer's hands, by end:
        #: what ``revising`` holds for each once delivered (``None``: the emission is
        #: complete, nothing more to revise).
        self.in_flight: dict[int, PendingRevision | None] = {}
        #: ``(report_at, ready_end)`` of the latest poll that reached the newest data
        #: (see :attr:`StreamState.covered`).
        self.covered: tuple[int, int] | None = state.covered if state else None
        #: End of the newest interval the API has shown for this stream.
        self.newest: int | None = None
        #: Where the current poll's next request starts (epoch seconds).
        self.cursor: int | None = None
        #: The state changed since it was last saved.
        self.dirty = False

    def __repr__(self) -> str:
        return f"StreamLog({self.store_key!r}, watermark={self.watermark})"

    @property
    def key(self) -> StreamKey:
        """``(system_id, source)``; built when asked (a fleet holds tens of thousands)."""
        return (self.system_id, self.source)

    def state(self) -> StreamState | None:
        """What the checkpoint should hold for this stream now."""
        watermark = self.watermark
        if watermark is None:
            return None
        delivered = self.delivered
        revising = self.revising
        return make_state(
            watermark,
            tuple(sorted(delivered)) if delivered else (),
            tuple(revising[end] for end in sorted(revising)) if revising else (),
            self.covered,
        )

    def reached(self, report_at: int) -> None:
        """A poll that covered the systems list's ``report_at`` reached the newest data
        the API shows for this stream."""
        # What it could hand out: an interval held back (partial, within settle) moves
        # only with news (its late device's upload, or newer data), so it need not be
        # fetched again after a restart until the list shows a later report.
        ready = max((*self.queued, *self.delivered), default=self.watermark)
        if ready is None or self.watermark is None:
            return
        covered = (report_at, max(ready, self.watermark))
        if self.covered != covered:
            self.covered = covered
            self.dirty = True

    def shown_through(self, report_at: int) -> bool:
        """Whether this stream has everything the system reported by ``report_at``:
        the API has shown data up to it, or (resumed from the checkpoint, nothing shown
        in this run yet) a poll that covered it reached the newest data and all it could
        hand out then was delivered."""
        if self.held:
            return False
        if self.newest is not None:
            return self.newest >= report_at
        covered = self.covered
        if covered is None or report_at > covered[0] or self.watermark is None:
            return False
        # A stream's intervals go out oldest first: when the newest one it could hand
        # out was delivered, so was every one before it.  Held-back partial intervals
        # and pending revisions move only with news, which a later report would show.
        ready_end = covered[1]
        return ready_end <= self.watermark or ready_end in self.delivered

    def poll_start(self) -> int | None:
        """Where a poll of this stream starts: the watermark, or before the oldest
        interval still revised, so that the window read anyway re-reads it."""
        watermark = self.watermark
        revising = self.revising
        if watermark is None or not revising:
            return watermark
        return min(watermark, min(revising) - INTERVAL_S)

    def start_at(self, epoch: int) -> None:
        """Start the stream (no saved state) at ``epoch``, rounded down to the grid."""
        self.watermark = epoch - epoch % INTERVAL_S
        self.dirty = True

    def accept(
        self,
        intervals: Sequence[TelemetryInterval],
        settle_s: float,
        *,
        window: tuple[int, int] | None = None,
        revise_s: float = 0.0,
    ) -> Accepted:
        """Intervals of one API answer -> those to deliver now (sorted), with their ends.

        ``window``: ``(start, latest)`` epoch seconds; an interval ending at or before
        ``start`` or after ``latest`` is not one the API may send for the request and is
        dropped with a warning.  ``revise_s``: how long (relative to the newest data) an
        interval that goes out partial is re-read for a revision; ``0`` never.
        """
        if not intervals:
            return Accepted([], [])
        ends = end_times(intervals)
        ascending = all(map(lt, ends, islice(ends, 1, None)))
        if window is not None:
            low, high = window
            if not (ascending and low < ends[0] and ends[-1] <= high):
                intervals, ends = self._in_window(intervals, ends, window)
                if not intervals:
                    return Accepted([], [])
        newest = ends[-1] if ascending else max(ends)
        if self.newest is None or newest > self.newest:
            self.newest = newest
        revised: list[tuple[int, TelemetryInterval]] = []
        if self.revising:
            revised = self._revise(intervals, ends, revise_s)
        watermark = self.watermark if self.watermark is not None else -1
        delivered, queued, held = self.delivered, self.queued, self.held
        if ascending and not delivered and not queued and not held:
            # The common answer (a window in order, nothing of it handed out or held
            # yet): everything after the watermark, if every interval is complete.
            start = bisect_right(ends, watermark)
            fresh = intervals[start:]
            reporting = list(map(_DEVICES_REPORTING, fresh))
            totals = list(map(_TOTAL_DEVICES, fresh))
            if None not in reporting and None not in totals and all(map(ge, reporting, totals)):
                fresh_ends = ends[start:]
                queued.update(fresh_ends)
                return Accepted(list(fresh), fresh_ends)
        ready: list[tuple[int, TelemetryInterval]] = []
        for end, iv in zip(ends, intervals, strict=True):
            if end <= watermark or end in delivered or end in queued:
                continue
            complete = _complete(iv)
            if not complete and self.newest - end < settle_s:
                held.add(end)
                continue
            held.discard(end)
            queued.add(end)
            if complete:
                ready.append((end, iv))
                continue
            ready.append((end, attrs.evolve(iv, partial=True)))
            if revise_s > 0:
                self.in_flight[end] = _pending(end, 0, iv)
        if revised:
            ready.extend(revised)
            ready.sort(key=_FIRST)
        elif not ascending:
            ready.sort(key=_FIRST)
        return Accepted([iv for _, iv in ready], [end for end, _ in ready])

    def _revise(
        self, intervals: Sequence[TelemetryInterval], ends: list[int], revise_s: float
    ) -> list[tuple[int, TelemetryInterval]]:
        """Compare the answer with the intervals still revised: those whose values
        changed go out again (queued here), one revision up; those now older than
        ``revise_s`` relative to the newest data are revised no more."""
        revising, in_flight, queued = self.revising, self.in_flight, self.queued
        position = {end: i for i, end in enumerate(ends)}
        out: list[tuple[int, TelemetryInterval]] = []
        for end, pending in revising.items():
            i = position.get(end)
            if i is None or end in in_flight:
                continue  # not in this answer, or its last revision is not delivered yet
            iv = intervals[i]
            if _pending(end, pending.revision, iv) == pending:
                continue  # the values the consumer has: nothing to revise
            complete = _complete(iv)
            revision = pending.revision + 1
            in_flight[end] = None if complete else _pending(end, revision, iv)
            queued.add(end)
            out.append((end, attrs.evolve(iv, partial=not complete, revision=revision)))
        newest = self.newest
        assert newest is not None
        expired = [end for end in revising if newest - end >= revise_s and end not in in_flight]
        if expired:
            for end in expired:
                del revising[end]
            self.dirty = True
        return out

    def _landed(self, end: int) -> None:
        """A partial interval or a revision in flight was delivered: remember what the
        consumer now has of it (or that it is final)."""
        pending = self.in_flight.pop(end)
        if pending is None:
            self.revising.pop(end, None)
        else:
            self.revising[end] = pending
        self.dirty = True

    def requeue(self, intervals: Sequence[TelemetryInterval], ends: Sequence[int]) -> None:
        """``intervals`` (ends index for index), counted as delivered, come again (their
        commit failed): queued once more, partial ones and revisions in flight again."""
        self.queued.update(ends)
        for iv, end in zip(intervals, ends, strict=True):
            if iv.revision or iv.partial:
                self.in_flight[end] = None if not iv.partial else _pending(end, iv.revision, iv)

    def restore(self, state: StreamState | None) -> None:
        """Go back to ``state`` (a transactional commit failed; ``None``: keep the
        watermark, nothing delivered past it)."""
        if state is not None:
            self.watermark = state.watermark
            self.delivered = set(state.delivered)
            self.revising = {p.end: p for p in state.revising}
        else:
            self.delivered = set()
            self.revising = {}
        self.dirty = True

    def _in_window(
        self, intervals: Sequence[TelemetryInterval], ends: list[int], window: tuple[int, int]
    ) -> tuple[Sequence[TelemetryInterval], list[int]]:
        low, high = window
        kept: list[TelemetryInterval] = []
        kept_ends: list[int] = []
        bogus: list[str] = []
        for iv, end in zip(intervals, ends, strict=True):
            if low < end <= high:
                kept.append(iv)
                kept_ends.append(end)
            else:
                bogus.append(iv.end_at.isoformat())
        if bogus:
            _LOGGER.warning(
                "stream %s: dropped %d interval(s) outside the window the API may answer"
                " (%s); they are never delivered and never move the checkpoint",
                self.store_key,
                len(bogus),
                ", ".join(bogus[:3]) + (" ..." if len(bogus) > 3 else ""),
            )
        return kept, kept_ends

    def mark_delivered(self, end: int, late_horizon_s: float) -> None:
        """The consumer has taken the interval ending at ``end``."""
        if self.in_flight and end in self.in_flight:
            self._landed(end)
        queued = self.queued
        queued.discard(end)
        if not queued:
            # A set keeps the table of its largest size when emptied one by one (a week
            # of catch-up: 32 KB); clear() gives it back, so a fleet's memory stays flat.
            queued.clear()
        watermark = self.watermark
        if watermark is not None and end == watermark + INTERVAL_S and not self.delivered:
            # The common case (in order, no gap pending): one step, no walk.
            self.watermark = end
            self.dirty = True
            if self.newest is None or self.newest - end - INTERVAL_S < late_horizon_s:
                return
        elif watermark is None or end > watermark:
            self.delivered.add(end)
            self.dirty = True
        self.advance(late_horizon_s)

    def mark_delivered_many(self, ends: Sequence[int], late_horizon_s: float) -> None:
        """The consumer has taken the intervals ending at ``ends`` (a batch's part of this
        stream, ascending)."""
        if not ends:
            return
        watermark = self.watermark
        first, last = ends[0], ends[-1]
        if (
            watermark is not None
            and not self.delivered
            and not self.in_flight
            and first == watermark + INTERVAL_S
            and list(ends) == list(range(first, last + 1, INTERVAL_S))
        ):
            # Every slot from the watermark on, in order: one step, as mark_delivered
            # takes each of them in this case.
            queued = self.queued
            queued.difference_update(ends)
            if not queued:
                queued.clear()  # as in mark_delivered
            self.watermark = last
            self.dirty = True
            if self.newest is not None and self.newest - last - INTERVAL_S >= late_horizon_s:
                self.advance(late_horizon_s)
            return
        for end in ends:
            self.mark_delivered(end, late_horizon_s)

    def advance(self, late_horizon_s: float) -> None:
        """Move the watermark over delivered intervals and over gaps given up."""
        if self.watermark is None:
            return
        moved = False
        while True:
            slot = self.watermark + INTERVAL_S
            if slot in self.delivered:
                self.delivered.discard(slot)
            elif (
                self.newest is not None
                and self.newest - slot >= late_horizon_s
                and slot not in self.queued
                and slot not in self.held
            ):
                # A gap this far behind the newest data is given up.  Jump straight to the
                # next slot that still matters rather than walk a long outage slot by slot.
                pending = [s for s in (*self.delivered, *self.queued, *self.held) if s > slot]
                limit = int(self.newest - late_horizon_s)
                limit -= limit % INTERVAL_S
                target = min([*pending, limit + INTERVAL_S]) - INTERVAL_S
                slot = max(slot, target)
            else:
                break
            self.watermark = slot
            moved = True
        if moved:
            self.dirty = True
            if not self.delivered:
                self.delivered.clear()  # as for ``queued`` in mark_delivered

    def jump_to_first(self, target: int) -> bool:
        """The stream's data starts at ``target + 15 min`` (a 422 said so).

        Returns whether the current poll should move its cursor there.
        """
        if self.cursor is not None and target <= self.cursor:
            return False
        self.cursor = target
        if self.watermark is None or target > self.watermark:
            self.watermark = target
            self.delivered = {e for e in self.delivered if e > target}
            self.dirty = True
        return True
