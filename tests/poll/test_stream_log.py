"""The per-stream logic (``enphase_battery.poll.stream_log``), pure: no HTTP, no clock."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from enphase_battery.models.delivered import INTERVAL_S, TelemetryInterval
from enphase_battery.poll.stream_log import StreamLog, end_times
from enphase_battery.store.checkpoint import StreamState

BASE = 1_780_000_200  # on the 15-minute grid
HORIZON_S = 6 * 86_400.0


def interval(end: int, devices: int = 2) -> TelemetryInterval:
    return TelemetryInterval(1, "battery", datetime.fromtimestamp(end, UTC), 1, 0, 50, devices, 2)


def reference_mark(log: StreamLog, end: int) -> None:
    """The rule without the in-order shortcut: remember, then walk the watermark."""
    log.queued.discard(end)
    if log.watermark is None or end > log.watermark:
        log.delivered.add(end)
    log.advance(HORIZON_S)


@settings(max_examples=200, deadline=None)
@given(
    order=st.permutations(list(range(1, 25))),
    skip=st.sets(st.integers(1, 24), max_size=4),
    newest_extra=st.integers(0, 800),
)
def test_in_order_shortcut_agrees_with_the_general_rule(
    order: list[int], skip: set[int], newest_extra: int
) -> None:
    fast = StreamLog((1, "battery"), StreamState(BASE))
    slow = StreamLog((1, "battery"), StreamState(BASE))
    # The skipped ones never arrive (gaps); the API has shown data up to some point past
    # these, far enough at times for the late horizon to give gaps up.
    ends = [BASE + INTERVAL_S * i for i in range(1, 25) if i not in skip]
    shown = [*ends, BASE + INTERVAL_S * (24 + newest_extra)]
    for log in (fast, slow):
        log.accept([interval(e) for e in shown], settle_s=3600)
    for i in order:
        if i in skip:
            continue
        end = BASE + INTERVAL_S * i
        fast.mark_delivered(end, HORIZON_S)
        reference_mark(slow, end)
        assert (fast.watermark, fast.delivered) == (slow.watermark, slow.delivered)
    assert fast.state() == slow.state()


def test_intervals_outside_the_window_are_dropped_and_do_not_count_as_newest() -> None:
    log = StreamLog((1, "battery"), StreamState(BASE))
    good = [interval(BASE + INTERVAL_S * i) for i in (1, 2)]
    bogus = [interval(int(datetime(2056, 1, 1, tzinfo=UTC).timestamp())), interval(BASE)]
    ready, ends = log.accept([*good, *bogus], settle_s=3600, window=(BASE, BASE + 2 * INTERVAL_S))
    assert ends == [int(iv.end_at.timestamp()) for iv in good]
    assert ready == good
    assert log.newest == BASE + 2 * INTERVAL_S
    for iv in ready:
        log.mark_delivered(int(iv.end_at.timestamp()), HORIZON_S)
    assert log.state() == StreamState(BASE + 2 * INTERVAL_S)


def test_a_partial_interval_is_held_until_settled_then_flagged() -> None:
    log = StreamLog((1, "battery"), StreamState(BASE))
    first = BASE + INTERVAL_S
    assert log.accept([interval(first, devices=1)], settle_s=3600).intervals == []
    later = [interval(first, devices=1), *(interval(first + INTERVAL_S * i) for i in range(1, 5))]
    ready = log.accept(later, settle_s=3600).intervals
    assert ready[0].end_at == later[0].end_at
    assert ready[0].partial
    assert not any(iv.partial for iv in ready[1:])
    # It comes out once: the same answer again brings nothing.
    assert log.accept(later, settle_s=3600).intervals == []


def reference_accept(
    log: StreamLog, intervals: list[TelemetryInterval], settle_s: float
) -> list[tuple[int, bool]]:
    """accept() one interval at a time, in the general loop's order (no column shortcut)."""
    ready: list[tuple[int, bool]] = []
    for iv in sorted(intervals, key=lambda iv: iv.end_at):
        end = int(iv.end_at.timestamp())
        if log.watermark is not None and end <= log.watermark:
            continue
        if end in log.delivered or end in log.queued:
            continue
        complete = iv.devices_reporting is None or iv.devices_reporting >= (iv.total_devices or 0)
        assert log.newest is not None
        if not complete and log.newest - end < settle_s:
            log.held.add(end)
            continue
        log.held.discard(end)
        log.queued.add(end)
        ready.append((end, iv.partial or not complete))
    return ready


@settings(max_examples=200, deadline=None)
@given(
    slots=st.lists(st.integers(-3, 40), min_size=1, max_size=30),
    partial=st.sets(st.integers(-3, 40), max_size=3),
    queued_before=st.sets(st.integers(1, 40), max_size=3),
    ordered=st.booleans(),
)
def test_accept_column_shortcut_agrees_with_the_general_rule(
    slots: list[int], partial: set[int], queued_before: set[int], ordered: bool
) -> None:
    """The answers the shortcut takes (in order, all complete, nothing queued) and those it
    leaves to the loop come out as the one-at-a-time rule says, ends index for index."""
    if ordered:
        slots = sorted(set(slots))
    intervals = [interval(BASE + INTERVAL_S * k, devices=1 if k in partial else 2) for k in slots]
    fast = StreamLog((1, "battery"), StreamState(BASE))
    slow = StreamLog((1, "battery"), StreamState(BASE))
    for log in (fast, slow):
        log.queued.update(BASE + INTERVAL_S * k for k in queued_before)
        log.newest = BASE + INTERVAL_S * max(slots)
    got = fast.accept(intervals, settle_s=3 * INTERVAL_S)
    want = reference_accept(slow, intervals, settle_s=3 * INTERVAL_S)
    assert got.ends == [end for end, _ in want]
    assert [int(iv.end_at.timestamp()) for iv in got.intervals] == got.ends
    assert [iv.partial for iv in got.intervals] == [flag for _, flag in want]
    assert (fast.queued, fast.held, fast.newest) == (slow.queued, slow.held, slow.newest)


@settings(max_examples=200, deadline=None)
@given(
    cut=st.lists(st.integers(1, 24), max_size=5),
    gap=st.sets(st.integers(1, 24), max_size=2),
    newest_extra=st.integers(0, 800),
)
def test_marking_a_batch_agrees_with_marking_each(
    cut: list[int], gap: set[int], newest_extra: int
) -> None:
    """mark_delivered_many over a batch's parts (in order, with or without gaps) leaves
    the log as marking its intervals one by one does."""
    ends = [BASE + INTERVAL_S * i for i in range(1, 25) if i not in gap]
    shown = [*ends, BASE + INTERVAL_S * (24 + newest_extra)]
    many = StreamLog((1, "battery"), StreamState(BASE))
    each = StreamLog((1, "battery"), StreamState(BASE))
    for log in (many, each):
        log.accept([interval(e) for e in shown], settle_s=3600)
    bounds = sorted({0, len(ends), *(min(c, len(ends)) for c in cut)})
    for lo, hi in pairwise(bounds):
        many.mark_delivered_many(ends[lo:hi], HORIZON_S)
        for end in ends[lo:hi]:
            each.mark_delivered(end, HORIZON_S)
        assert (many.watermark, many.delivered, many.queued) == (
            each.watermark,
            each.delivered,
            each.queued,
        )
    assert many.state() == each.state()


def test_end_times_of_consecutive_and_scattered_intervals() -> None:
    consecutive = [interval(BASE + INTERVAL_S * k) for k in range(1, 673)]
    assert end_times(consecutive) == [BASE + INTERVAL_S * k for k in range(1, 673)]
    scattered = [interval(BASE + 900), interval(BASE + 2700), interval(BASE + 1800)]
    assert end_times(scattered) == [BASE + 900, BASE + 2700, BASE + 1800]
    off_grid = [interval(BASE + 900), interval(BASE + 1000)]
    assert end_times(off_grid) == [BASE + 900, BASE + 1000]
