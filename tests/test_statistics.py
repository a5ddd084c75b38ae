"""``enphase_battery.statistics``: hourly rows that add up, however the intervals arrive."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enphase_battery.models.delivered import BATTERY, TelemetryInterval
from enphase_battery.statistics import (
    DEFAULT_HORIZON,
    HourlyEnergy,
    HourlyRow,
    StatisticPoint,
    hour_of,
    hourly_rows,
)
from tests.support.cli import without_coverage

T0 = datetime(2026, 5, 1, tzinfo=UTC)
RowKey = tuple[int, str, datetime]


def interval(
    end_at: datetime,
    charge_wh: int = 0,
    discharge_wh: int = 0,
    soc_percent: int | None = 50,
    *,
    system_id: int = 1,
    source: str = BATTERY,
    revision: int = 0,
    partial: bool = False,
) -> TelemetryInterval:
    return TelemetryInterval(
        system_id=system_id,
        source=source,
        end_at=end_at,
        charge_wh=charge_wh,
        discharge_wh=discharge_wh,
        soc_percent=soc_percent,
        devices_reporting=1,
        total_devices=1,
        partial=partial,
        revision=revision,
    )


def at(hour: int, minute: int = 0) -> datetime:
    return T0 + timedelta(hours=hour, minutes=minute)


def brief(rows: Iterable[HourlyRow]) -> list[tuple[datetime, int, int]]:
    return [(row.start, row.charge_wh, row.charge_sum_wh) for row in rows]


def naive_rows(final: Iterable[TelemetryInterval]) -> dict[RowKey, HourlyRow]:
    """The expected rows, written out as plainly as possible (no shared code with the
    module): hour = floor(end_at - 15 min); sums from each stream's earliest hour."""
    by_hour: dict[RowKey, list[TelemetryInterval]] = {}
    for iv in final:
        start = iv.end_at - timedelta(minutes=15)
        start = start.replace(minute=0, second=0, microsecond=0)
        by_hour.setdefault((iv.system_id, iv.source, start), []).append(iv)
    expected: dict[RowKey, HourlyRow] = {}
    sums: dict[tuple[int, str], tuple[int, int]] = {}
    for key in sorted(by_hour):
        ivs = by_hour[key]
        charge = sum(iv.charge_wh for iv in ivs)
        discharge = sum(iv.discharge_wh for iv in ivs)
        before = sums.get(key[:2], (0, 0))
        sums[key[:2]] = (before[0] + charge, before[1] + discharge)
        socs = [iv.soc_percent for iv in ivs if iv.soc_percent is not None]
        expected[key] = HourlyRow(
            system_id=key[0],
            source=key[1],
            start=key[2],
            charge_wh=charge,
            discharge_wh=discharge,
            charge_sum_wh=sums[key[:2]][0],
            discharge_sum_wh=sums[key[:2]][1],
            soc_mean=sum(socs) / len(socs) if socs else None,
            soc_min=min(socs) if socs else None,
            soc_max=max(socs) if socs else None,
            intervals=len(ivs),
            partial=any(iv.partial for iv in ivs),
        )
    return expected


# -- the hour an interval belongs to -------------------------------------------------------


def test_an_interval_belongs_to_the_hour_of_its_start() -> None:
    assert hour_of(interval(at(10, 15))) == at(10)
    assert hour_of(interval(at(10, 45))) == at(10)
    assert hour_of(interval(at(11, 0))) == at(10)  # covers (10:45, 11:00]
    assert hour_of(interval(at(10, 0))) == at(9)
    assert hour_of(interval(at(10, 15))).tzinfo is UTC


def test_one_hour_adds_up_its_intervals() -> None:
    energy = HourlyEnergy()
    energy.add(interval(at(10, 15), 100, 5, 40))
    energy.add(interval(at(10, 30), 200, 0, None))
    energy.add(interval(at(10, 45), 0, 7, 45, partial=True))
    (row,) = energy.add(interval(at(11, 0), 50, 1, 47))
    assert row == HourlyRow(
        system_id=1,
        source=BATTERY,
        start=at(10),
        charge_wh=350,
        discharge_wh=13,
        charge_sum_wh=350,
        discharge_sum_wh=13,
        soc_mean=44.0,
        soc_min=40,
        soc_max=47,
        intervals=4,
        partial=True,
    )
    assert row.key == (1, BATTERY, at(10))
    assert row.charged == StatisticPoint(at(10), state=350, sum=350)
    assert row.discharged == StatisticPoint(at(10), state=13, sum=13)
    assert row.soc == StatisticPoint(at(10), mean=44.0, min=40, max=47)


def test_an_hour_without_state_of_charge_has_none() -> None:
    (row,) = HourlyEnergy().add(interval(at(10, 15), 1, 2, None))
    assert (row.soc_mean, row.soc_min, row.soc_max) == (None, None, None)
    assert row.soc == StatisticPoint(at(10))


# -- what is (re-)emitted ------------------------------------------------------------------


def test_in_order_each_interval_emits_its_own_hour_only() -> None:
    energy = HourlyEnergy()
    emitted = [energy.add(interval(at(0, 15 * (i + 1)), 10)) for i in range(12)]
    assert all(len(rows) == 1 for rows in emitted)
    assert [rows[0].charge_sum_wh for rows in emitted] == [10 * (i + 1) for i in range(12)]


def test_a_repeat_or_an_older_revision_emits_nothing() -> None:
    energy = HourlyEnergy()
    energy.add(interval(at(10, 15), 100, revision=2))
    assert energy.add(interval(at(10, 15), 100, revision=2)) == []
    assert energy.add(interval(at(10, 15), 999, revision=1)) == []
    assert energy.add(interval(at(10, 15), 999, revision=0)) == []
    assert brief(energy.rows()) == [(at(10), 100, 100)]


def test_an_equal_revision_with_other_values_replaces_like_an_upsert() -> None:
    energy = HourlyEnergy()
    energy.add(interval(at(10, 15), 100, revision=1))
    assert brief(energy.add(interval(at(10, 15), 60, revision=1))) == [(at(10), 60, 60)]


def test_a_revision_with_the_same_values_emits_nothing() -> None:
    energy = HourlyEnergy()
    energy.add(interval(at(10, 15), 100, partial=True))
    assert energy.add(interval(at(10, 15), 100, revision=1, partial=True)) == []


def test_a_late_interval_reemits_its_hour_and_every_later_sum() -> None:
    energy = HourlyEnergy()
    energy.add_many(interval(at(h, 15), 10) for h in range(5))
    rows = energy.add(interval(at(1, 30), 3))
    assert brief(rows) == [(at(1), 13, 23), (at(2), 10, 33), (at(3), 10, 43), (at(4), 10, 53)]


def test_a_revision_changing_energy_reemits_later_sums_and_soc_only_its_hour() -> None:
    energy = HourlyEnergy()
    energy.add_many(interval(at(h, 15), 10, soc_percent=20, partial=True) for h in range(4))
    rows = energy.add(interval(at(1, 15), 10, soc_percent=30, revision=1))
    assert [(r.start, r.soc_mean, r.partial) for r in rows] == [(at(1), 30.0, False)]
    rows = energy.add(interval(at(1, 15), 4, soc_percent=30, revision=2))
    assert brief(rows) == [(at(1), 4, 14), (at(2), 10, 24), (at(3), 10, 34)]


def test_a_new_hour_without_energy_in_a_gap_emits_only_itself() -> None:
    energy = HourlyEnergy()
    energy.add_many([interval(at(0, 15), 10), interval(at(5, 15), 10)])
    rows = energy.add(interval(at(2, 15), 0, 0, 80))
    assert brief(rows) == [(at(2), 0, 10)]


def test_an_interval_before_the_start_moves_it_and_shifts_every_sum() -> None:
    energy = HourlyEnergy()
    energy.add_many(interval(at(h, 15), 10) for h in range(10, 13))
    rows = energy.add(interval(at(8, 45), 5))
    assert brief(rows) == [(at(8), 5, 5), (at(10), 10, 15), (at(11), 10, 25), (at(12), 10, 35)]


def test_a_batch_emits_each_key_once_with_its_final_value_ascending() -> None:
    energy = HourlyEnergy()
    energy.add_many(interval(at(h, 15), 10) for h in range(3))
    rows = energy.add_many(
        [
            interval(at(2, 30), 1),
            interval(at(0, 30), 1, source="E1"),
            interval(at(0, 30), 2),
            interval(at(0, 30), 7, revision=1),
        ]
    )
    assert [(r.source, r.start, r.charge_wh, r.charge_sum_wh) for r in rows] == [
        (BATTERY, at(0), 17, 17),
        (BATTERY, at(1), 10, 27),
        (BATTERY, at(2), 11, 38),
        ("E1", at(0), 1, 1),
    ]


def test_streams_are_summed_apart() -> None:
    energy = HourlyEnergy()
    energy.add(interval(at(0, 15), 10))
    energy.add(interval(at(0, 15), 20, source="E1"))
    energy.add(interval(at(0, 15), 40, system_id=2))
    assert energy.streams == ((1, BATTERY), (1, "E1"), (2, BATTERY))
    assert [r.charge_sum_wh for r in energy.rows()] == [10, 20, 40]
    assert brief(energy.rows((1, "E1"))) == [(at(0), 20, 20)]
    assert energy.rows((9, BATTERY)) == []


# -- the horizon ---------------------------------------------------------------------------


def test_hours_behind_the_horizon_fold_into_the_base_and_sums_go_on() -> None:
    energy = HourlyEnergy(horizon=timedelta(hours=24))
    final = [interval(at(0, 15 * (i + 1)), 1 + i % 7, i % 3) for i in range(4 * 24 * 5)]
    emitted: dict[RowKey, HourlyRow] = {}
    for batch_start in range(0, len(final), 50):
        for row in energy.add_many(final[batch_start : batch_start + 50]):
            emitted[row.key] = row
        assert len(energy.rows()) <= 24
    assert emitted == naive_rows(final)
    assert energy.rows() == list(naive_rows(final).values())[-24:]
    # A restored state keeps the base: the next hour's sum counts on from it.
    restored = HourlyEnergy.from_json(energy.to_json(), horizon=timedelta(hours=24))
    nxt = interval(at(24 * 5, 15), 1000)
    assert restored.add(nxt) == energy.add(nxt)


def test_an_interval_older_than_the_horizon_is_dropped_and_counted() -> None:
    energy = HourlyEnergy(horizon=timedelta(hours=24))
    energy.add_many(interval(at(h, 15), 10) for h in range(48))
    before = energy.rows()
    assert energy.add(interval(at(10, 30), 5)) == []
    assert energy.dropped == 1
    assert energy.rows() == before
    # Within the horizon it is placed.
    assert energy.add(interval(at(30, 30), 5))[0].start == at(30)


def test_the_default_horizon_is_beyond_any_late_horizon_a_poller_accepts() -> None:
    # front.py refuses a late_horizon of 7 days or more.
    assert timedelta(days=7) < DEFAULT_HORIZON
    assert HourlyEnergy().horizon == DEFAULT_HORIZON
    with pytest.raises(ValueError, match="at least one hour"):
        HourlyEnergy(horizon=timedelta(minutes=30))


# -- the saved state -----------------------------------------------------------------------


def test_the_state_round_trips_mid_stream() -> None:
    rng = random.Random(5)
    final = [
        interval(at(0, 15 * (i + 1)), rng.randrange(500), rng.randrange(500), rng.randrange(101))
        for i in range(200)
    ]
    arrivals = final[:]
    rng.shuffle(arrivals)
    straight = HourlyEnergy()
    straight_rows = [straight.add_many(arrivals[i : i + 9]) for i in range(0, 200, 9)]
    resumed = HourlyEnergy()
    resumed_rows = []
    for number, i in enumerate(range(0, 200, 9)):
        if number % 4 == 3:
            text = resumed.to_json()
            assert json.loads(text)["v"] == 1
            resumed = HourlyEnergy.from_json(text)
        resumed_rows.append(resumed.add_many(arrivals[i : i + 9]))
    assert resumed_rows == straight_rows
    assert resumed.rows() == straight.rows() == hourly_rows(final)


def test_the_state_saves_per_stream_and_joins_again() -> None:
    energy = HourlyEnergy()
    energy.add_many(interval(at(h, 15), 10, source=s) for h in range(3) for s in ("A", "B"))
    parts = [energy.to_json([key]) for key in energy.streams]
    assert HourlyEnergy.from_json(*parts).rows() == energy.rows()
    assert HourlyEnergy.from_json().rows() == []


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        '{"v": 2, "streams": []}',
        '{"streams": []}',
        '{"v": 1, "streams": [{"system_id": 1}]}',
        '{"v": 1, "streams": [{"system_id": 1, "source": "battery", "base": [0, 0],'
        ' "folded_through": null, "intervals": [[1, 2]]}]}',
    ],
)
def test_a_state_that_is_not_one_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="not an hourly energy state"):
        HourlyEnergy.from_json(text)


# -- the property --------------------------------------------------------------------------

STREAMS = [(1, BATTERY), (1, "E1"), (2, BATTERY)]
HOURS = 30


@st.composite
def final_intervals(draw: st.DrawFn) -> list[TelemetryInterval]:
    """1-3 streams over up to HOURS hours, with gaps."""
    streams = draw(st.lists(st.sampled_from(STREAMS), min_size=1, max_size=3, unique=True))
    result = []
    for system_id, source in streams:
        first = draw(st.integers(0, HOURS * 4 - 1))
        slots = draw(
            st.lists(st.integers(first, HOURS * 4 - 1), min_size=1, max_size=40, unique=True)
        )
        for slot in slots:
            result.append(
                interval(
                    at(0, 15 * (slot + 1)),
                    draw(st.integers(0, 3000)),
                    draw(st.integers(0, 3000)),
                    draw(st.none() | st.integers(0, 100)),
                    system_id=system_id,
                    source=source,
                    revision=draw(st.integers(0, 3)),
                    partial=draw(st.booleans()),
                )
            )
    return result


@st.composite
def arrivals(draw: st.DrawFn, final: Sequence[TelemetryInterval]) -> list[TelemetryInterval]:
    """Every revision of every final interval (earlier ones with other values), some
    repeated, in any order: late, out of order, a newer revision before an older one."""
    sent = []
    for iv in final:
        for revision in range(iv.revision):
            sent.append(
                interval(
                    iv.end_at,
                    draw(st.integers(0, 3000)),
                    draw(st.integers(0, 3000)),
                    draw(st.none() | st.integers(0, 100)),
                    system_id=iv.system_id,
                    source=iv.source,
                    revision=revision,
                    partial=True,
                )
            )
        sent.append(iv)
    repeats = draw(st.lists(st.sampled_from(sent), max_size=10))
    return draw(st.permutations(sent + repeats))


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_final_rows_equal_one_pass_whatever_the_arrival(data: st.DataObject) -> None:
    final = data.draw(final_intervals())
    sequence = data.draw(arrivals(final))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(sequence)), max_size=8)))
    restore_at = data.draw(st.sets(st.integers(0, len(cuts))))
    energy = HourlyEnergy()
    consumer: dict[RowKey, HourlyRow] = {}  # upserts every emitted row
    seen: list[TelemetryInterval] = []
    for number, (lo, hi) in enumerate(zip([0, *cuts], [*cuts, len(sequence)], strict=True)):
        if number in restore_at:
            energy = HourlyEnergy.from_json(energy.to_json())
        batch = sequence[lo:hi]
        emitted = energy.add(batch[0]) if len(batch) == 1 else energy.add_many(batch)
        keys = [row.key for row in emitted]
        assert len(keys) == len(set(keys))
        for stream in {key[:2] for key in keys}:
            starts = [key[2] for key in keys if key[:2] == stream]
            assert starts == sorted(starts)
        for row in emitted:
            consumer[row.key] = row
        seen += batch
        # At every step the consumer holds exactly the rows of what has arrived so far:
        # no changed row was left out, no stale sum stays behind.
        assert consumer == {row.key: row for row in hourly_rows(seen)}
    expected = naive_rows(final)
    assert consumer == expected  # every hour with data has its row, with final values
    assert {row.key: row for row in hourly_rows(final)} == expected
    assert {row.key: row for row in energy.rows()} == expected
    assert [row.key for row in energy.rows()] == sorted(
        expected, key=lambda key: (energy.streams.index(key[:2]), key[2])
    )


def test_the_statistics_load_without_the_poller_the_client_sqlite_or_the_cli() -> None:
    probe = (
        "from enphase_battery import HourlyEnergy, HourlyRow, StatisticPoint, hourly_rows\n"
        "import sys\nprint('\\n'.join(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=without_coverage(),
    )
    loaded = set(done.stdout.split())
    assert "enphase_battery.statistics" in loaded
    heavy = {"sqlite3", "aiohttp", "enphase_battery.poll.poller", "enphase_battery.client"}
    assert not loaded & (heavy | {"enphase_battery.cli", "enphase_battery.poll.engine"})


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_with_a_short_horizon_late_data_within_it_still_adds_up(data: st.DataObject) -> None:
    """A 6-hour horizon and intervals up to 4 hours late: hours fold while late data and
    revisions still arrive, and every row the consumer holds is still right."""
    final = data.draw(final_intervals())
    shuffled = data.draw(arrivals(final))
    delays = data.draw(st.lists(st.floats(0, 4), min_size=len(shuffled), max_size=len(shuffled)))
    arrival_h = [
        (iv.end_at - T0).total_seconds() / 3600 - 0.25 + delay
        for iv, delay in zip(shuffled, delays, strict=True)
    ]
    sequence = [iv for _, iv in sorted(zip(arrival_h, shuffled, strict=True), key=lambda p: p[0])]
    size = data.draw(st.integers(1, 12))
    energy = HourlyEnergy(horizon=timedelta(hours=6))
    consumer: dict[RowKey, HourlyRow] = {}
    for lo in range(0, len(sequence), size):
        if data.draw(st.booleans()):
            energy = HourlyEnergy.from_json(energy.to_json(), horizon=timedelta(hours=6))
        for row in energy.add_many(sequence[lo : lo + size]):
            consumer[row.key] = row
        for stream in energy.streams:
            assert len(energy.rows(stream)) <= 6
    assert energy.dropped == 0
    assert consumer == naive_rows(final)
