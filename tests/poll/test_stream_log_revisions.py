"""Revisions of partial intervals in the per-stream logic (``StreamLog``), pure: no HTTP.

An interval that went out ``partial`` is re-read while it is younger than ``revise_for``;
a re-read with other values goes out again, one revision up; the revisions still possible
are part of the stream's state, so a restart neither loses one nor sends one twice.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enphase_battery.models.delivered import INTERVAL_S, TelemetryInterval
from enphase_battery.poll.stream_log import StreamLog
from enphase_battery.store.checkpoint import PendingRevision, StreamState

BASE = 1_780_000_200  # on the 15-minute grid
SETTLE_S = 3600.0
REVISE_S = 6 * 3600.0
HORIZON_S = 6 * 86_400.0


def iv(end: int, charge: int, reporting: int, total: int = 2, soc: int = 50) -> TelemetryInterval:
    return TelemetryInterval(
        1, "battery", datetime.fromtimestamp(end, UTC), charge, 0, soc, reporting, total
    )


def at(i: int) -> int:
    return BASE + INTERVAL_S * i


def deliver(log: StreamLog, intervals: list[TelemetryInterval], ends: list[int]) -> None:
    for end in ends:
        log.mark_delivered(end, HORIZON_S)


def test_a_partial_interval_is_revised_once_its_values_change() -> None:
    log = StreamLog((1, "battery"), StreamState(at(0)))
    # Interval 1 has one of two devices; the newest data is past settle: out partial.
    first = log.accept([iv(at(1), 100, 1), iv(at(6), 10, 2)], SETTLE_S, revise_s=REVISE_S)
    assert [(x.partial, x.revision) for x in first.intervals] == [(True, 0), (False, 0)]
    deliver(log, *first)
    assert log.state() == StreamState(at(1), (at(6),), (PendingRevision(at(1), 0, 100, 0, 50, 1),))
    # The same values again: nothing.
    log.cursor = log.poll_start()
    assert log.cursor == at(0)  # the poll re-reads from before the partial interval
    again = log.accept([iv(at(1), 100, 1), iv(at(6), 10, 2)], SETTLE_S, revise_s=REVISE_S)
    assert again.intervals == []
    # The late device reported: revision 1, complete, final values.
    late = log.accept(
        [iv(at(1), 180, 2), iv(at(6), 10, 2), iv(at(7), 5, 2)], SETTLE_S, revise_s=REVISE_S
    )
    assert [(x.end_at, x.charge_wh, x.partial, x.revision) for x in late.intervals] == [
        (datetime.fromtimestamp(at(1), UTC), 180, False, 1),
        (datetime.fromtimestamp(at(7), UTC), 5, False, 0),
    ]
    deliver(log, *late)
    # Final: nothing left to revise, and the state says so.
    assert log.revising == {}
    assert log.state() == StreamState(at(1), (at(6), at(7)), ())
    assert log.poll_start() == at(1)


def test_no_second_revision_while_the_first_is_not_delivered() -> None:
    log = StreamLog((1, "battery"), StreamState(at(0)))
    deliver(log, *log.accept([iv(at(1), 100, 1), iv(at(6), 0, 2)], SETTLE_S, revise_s=REVISE_S))
    one = log.accept([iv(at(1), 120, 1), iv(at(6), 0, 2)], SETTLE_S, revise_s=REVISE_S)
    assert [(x.charge_wh, x.partial, x.revision) for x in one.intervals] == [(120, True, 1)]
    # Not taken yet: a re-read showing yet another value queues nothing more.
    assert log.accept([iv(at(1), 150, 2)], SETTLE_S, revise_s=REVISE_S).intervals == []
    deliver(log, *one)
    two = log.accept([iv(at(1), 150, 2)], SETTLE_S, revise_s=REVISE_S)
    assert [(x.charge_wh, x.partial, x.revision) for x in two.intervals] == [(150, False, 2)]


def test_a_pending_revision_expires_once_older_than_revise_for() -> None:
    log = StreamLog((1, "battery"), StreamState(at(0)))
    deliver(log, *log.accept([iv(at(1), 100, 1), iv(at(6), 0, 2)], SETTLE_S, revise_s=REVISE_S))
    assert log.revising
    log.dirty = False
    # Newest data moves 6 h past the partial interval: it is no longer re-read.
    log.accept([iv(at(25), 0, 2)], SETTLE_S, revise_s=REVISE_S)
    assert log.revising == {}
    assert log.dirty  # the state changed: it is saved
    assert log.accept([iv(at(1), 999, 2)], SETTLE_S, revise_s=REVISE_S).intervals == []


def test_revise_for_zero_is_todays_behaviour() -> None:
    log = StreamLog((1, "battery"), StreamState(at(0)))
    out = log.accept([iv(at(1), 100, 1), iv(at(6), 0, 2)], SETTLE_S, revise_s=0.0)
    deliver(log, *out)
    assert log.revising == {}
    assert log.in_flight == {}
    assert log.accept([iv(at(1), 180, 2)], SETTLE_S, revise_s=0.0).intervals == []


def test_a_pending_revision_survives_a_restart_from_the_saved_state() -> None:
    log = StreamLog((1, "battery"), StreamState(at(0)))
    deliver(log, *log.accept([iv(at(1), 100, 1), iv(at(6), 0, 2)], SETTLE_S, revise_s=REVISE_S))
    saved = StreamState.from_json(log.state().to_json())  # type: ignore[union-attr]
    assert saved == log.state()
    again = StreamLog((1, "battery"), saved)
    again.cursor = again.poll_start()
    out = again.accept([iv(at(1), 180, 2), iv(at(6), 0, 2)], SETTLE_S, revise_s=REVISE_S)
    assert [(x.charge_wh, x.revision) for x in out.intervals] == [(180, 1)]


def test_an_old_state_without_revisions_still_loads() -> None:
    assert StreamState.from_json('{"watermark": 5, "delivered": [9]}') == StreamState(5, (9,))
    with pytest.raises(ValueError, match="not a stream state"):
        StreamState.from_json('{"watermark": 5, "revising": [[1, 2]]}')


# -- any arrival order, any crash: the last emission of every interval is final -----------

DELAYS = st.sampled_from([0, 0, 0, 0, 1, 2, 3, 6, 12, 20])


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(4, 24),
    data=st.data(),
    crash_every=st.one_of(st.none(), st.integers(2, 9)),
    revise=st.booleans(),
)
def test_any_lateness_and_crashes_end_with_final_values(
    n: int, data: st.DataObject, crash_every: int | None, revise: bool
) -> None:
    """Two devices per interval, each reporting a chosen number of polls late; the
    consumer crashes every ``crash_every`` intervals (the one in hand comes again).

    With revisions every interval ends with its final values, each (interval, revision)
    once apart from the one in hand at a crash; without, nothing is ever revised.
    """
    charges = data.draw(
        st.lists(st.tuples(st.integers(0, 500), st.integers(0, 500)), min_size=n, max_size=n)
    )
    delays = data.draw(st.lists(st.tuples(DELAYS, DELAYS), min_size=n, max_size=n))
    revise_s = 30 * INTERVAL_S if revise else 0.0
    final = {at(i + 1): sum(charges[i]) for i in range(n)}

    def answer(poll: int) -> list[TelemetryInterval]:
        shown = []
        for i in range(min(n, poll)):
            seen = [d for d in (0, 1) if i + 1 + delays[i][d] <= poll]
            if seen:
                shown.append(iv(at(i + 1), sum(charges[i][d] for d in seen), len(seen)))
        return shown

    committed = StreamState(at(0))
    log = StreamLog((1, "battery"), committed)
    emitted: list[TelemetryInterval] = []
    in_hand_at_crash: list[TelemetryInterval] = []
    handed = 0
    for poll in range(1, n + 25):
        log.cursor = log.poll_start()
        shown = [x for x in answer(poll) if log.cursor is None or x.end_at.timestamp() > log.cursor]
        ready, ends = log.accept(shown, 4 * INTERVAL_S, revise_s=revise_s)
        for interval, end in zip(ready, ends, strict=True):
            emitted.append(interval)
            handed += 1
            if crash_every and handed % crash_every == 0:
                # Killed with this one in hand: the log is rebuilt from the last save.
                in_hand_at_crash.append(interval)
                log = StreamLog((1, "battery"), committed)
                break
            log.mark_delivered(end, HORIZON_S)
            state = log.state()
            assert state is not None
            committed = state
    counts = Counter((x.end_at, x.revision) for x in emitted)
    repeatable = Counter((x.end_at, x.revision) for x in in_hand_at_crash)
    assert all(c <= 1 + repeatable[k] for k, c in counts.items()), counts
    last: dict[int, TelemetryInterval] = {}
    for x in emitted:
        last[int(x.end_at.timestamp())] = x
    assert set(last) == set(final)  # nothing lost
    if revise:
        wrong = {e: (x.charge_wh, final[e]) for e, x in last.items() if x.charge_wh != final[e]}
        assert not wrong
        assert not any(x.partial for x in last.values())
    else:
        assert all(x.revision == 0 for x in emitted)


def test_the_covered_report_round_trips_and_says_when_a_resumed_stream_is_current() -> None:
    state = StreamState(at(4), (at(6),), (), (at(9), at(6)))
    assert StreamState.from_json(state.to_json()) == state
    log = StreamLog((1, "battery"), state)
    # Everything it could hand out by the report at(9) was delivered: nothing new before
    # a later report; a later one is news.
    assert log.shown_through(at(9))
    assert not log.shown_through(at(9) + 1)
    # The newest interval it could hand out was not delivered: poll again.
    assert not StreamLog((1, "battery"), StreamState(at(4), (), (), (at(9), at(6)))).shown_through(
        at(9)
    )
