"""The per-stream logic (``enphase_battery.streams``), pure: no HTTP, no clock."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from enphase_battery.checkpoint import StreamState
from enphase_battery.streams import INTERVAL_S, StreamLog, TelemetryInterval

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
