"""The hole check: intervals against the lifetime counters, pure and on the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enphase_battery import EnphaseClient, InvalidRequestError, RateLimits
from enphase_battery.reconcile import BATTERY_TOTAL, Verdict, check_span
from enphase_battery.simulator import EnphaseSimulator

T0 = 1_780_000_200 - 1_780_000_200 % 900  # a quarter-hour


def series(n: int, charge: int = 100, discharge: int = 0) -> dict[int, tuple[int, int]]:
    return {T0 + 900 * (k + 1): (charge, discharge) for k in range(n)}


def test_an_exact_match_is_ok() -> None:
    span = check_span("s", series(4), (T0, 1000, 500), (T0 + 3600, 1400, 500))
    assert span.verdict is Verdict.OK
    assert span.expected_intervals == 4
    assert span.tolerance_wh == 4 + 2
    assert span.charge_shortfall_wh == 0


def test_a_missing_interval_with_energy_is_short_and_named() -> None:
    data = series(4)
    del data[T0 + 1800]
    span = check_span("s", data, (T0, 1000, 500), (T0 + 3600, 1400, 500))
    assert span.verdict is Verdict.SHORT
    assert span.charge_shortfall_wh == 100
    assert span.missing == (datetime.fromtimestamp(T0 + 1800, UTC),)


def test_a_missing_idle_interval_is_reported_though_the_energy_adds_up() -> None:
    data = series(4, charge=0)
    del data[T0 + 900]
    span = check_span("s", data, (T0, 1000, 500), (T0 + 3600, 1000, 500))
    assert span.verdict is Verdict.MISSING_INTERVALS
    assert not span.ok


def test_rounding_within_tolerance_is_ok_and_beyond_is_not() -> None:
    # Four intervals each truncated by up to 1 Wh, two readings by up to 1 Wh: 6 Wh.
    ok = check_span("s", series(4), (T0, 1000, 0), (T0 + 3600, 1406, 0))
    assert ok.verdict is Verdict.OK
    short = check_span("s", series(4), (T0, 1000, 0), (T0 + 3600, 1407, 0))
    assert short.verdict is Verdict.SHORT
    excess = check_span("s", series(4), (T0, 1000, 0), (T0 + 3600, 1393, 0))
    assert excess.verdict is Verdict.EXCESS


def test_readings_inside_an_interval_count_its_energy_as_may_belong() -> None:
    data = series(6)
    # Readings at +5 min and +65 min: intervals 2-4 inside, 1 and 5 straddle the edges.
    a, b = (T0 + 300, 1000, 0), (T0 + 3900, 1000 + 3 * 100 + 150, 0)
    span = check_span("s", data, a, b)
    assert span.expected_intervals == 3
    assert span.edge_charge_wh == 200
    assert span.verdict is Verdict.OK
    too_much = check_span("s", data, a, (T0 + 3900, 1000 + 3 * 100 + 250, 0))
    assert too_much.verdict is Verdict.SHORT


START = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
async def sim() -> AsyncIterator[EnphaseSimulator]:
    async with EnphaseSimulator(
        seed=3,
        start=START,
        history=timedelta(days=5),
        late_probability=0.03,
        late_delay=timedelta(days=2),
    ) as simulator:
        yield simulator


@pytest.fixture
async def client(sim: EnphaseSimulator) -> AsyncIterator[EnphaseClient]:
    async with sim.make_client(rate_limits=RateLimits(100_000)) as api:
        yield api


def late_end_ats(
    sim: EnphaseSimulator, system_id: int, serial: str, lo: float, hi: float
) -> set[datetime]:
    """Intervals the simulator holds back (late) at its now, with energy in them."""
    truth = sim.ground_truth_encharge(system_id, serial, lo, hi)
    system = sim.system(system_id)
    device = system.encharge(serial)
    assert device is not None
    now = sim.clock.timestamp()
    return {
        datetime.fromtimestamp(iv.end_at, UTC)
        for iv in truth
        if sim.arrival.visible_at(device, device.index(iv.end_at)) > now
    }


async def test_late_intervals_show_as_holes_until_they_arrive(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    system_id = sim.system_ids[0]
    start = START - timedelta(days=3)
    end = START - timedelta(hours=2)
    before = sim.request_count
    result = await client.reconcile(system_id, start, end)
    serials = sim.encharge_serials(system_id)
    assert result.requests == sim.request_count - before == 4 + len(serials)
    assert {s.source for s in result.spans} == set(serials)
    assert len(result.spans) == 3 * len(serials)
    held_back = {
        serial: late_end_ats(sim, system_id, serial, start.timestamp(), end.timestamp())
        for serial in serials
    }
    assert any(held_back.values()), "the seed must produce late intervals in the window"
    for span in result.spans:
        expected = {t for t in held_back[span.source] if span.start < t <= span.end}
        assert set(span.missing) == expected
        assert span.ok == (not expected)
    # The held-back intervals carry energy the counters already counted.
    assert any(s.verdict is Verdict.SHORT and s.charge_shortfall_wh > 0 for s in result.spans)
    # Two days later every late interval has arrived: everything adds up.
    sim.clock.advance(timedelta(days=2, hours=1))
    again = await client.reconcile(system_id, start, end)
    assert again.ok, [s for s in again.problems]


async def test_system_battery_against_the_sum_of_the_counters(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    system_id = sim.system_ids[0]
    sim.clock.advance(timedelta(days=2, hours=1))
    result = await client.reconcile(
        system_id, START - timedelta(days=2), START, per_encharge=False, step=timedelta(hours=12)
    )
    assert {s.source for s in result.spans} == {BATTERY_TOTAL}
    assert len(result.spans) == 4
    assert result.ok


async def test_reconcile_without_an_end_checks_up_to_now() -> None:
    # The README's call: ``client.reconcile(system_id, start)``, ``end`` left to now.
    async with (
        EnphaseSimulator(seed=3, start=START, history=timedelta(days=3)) as sim,
        sim.make_client(rate_limits=RateLimits(100_000)) as client,
    ):
        system_id = sim.system_ids[0]
        start = START - timedelta(days=1)
        result = await client.reconcile(system_id, start)
        assert result.ok, list(result.problems)
        assert min(s.start for s in result.spans) == start
        # The last span ends at the meters' newest reading, within the hour before now.
        assert START - timedelta(hours=1) <= max(s.end for s in result.spans) <= START


async def test_bad_arguments_fail_before_any_request(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    system_id = sim.system_ids[0]
    before = sim.request_count
    with pytest.raises(InvalidRequestError):
        await client.reconcile(system_id, START, START - timedelta(hours=1))
    with pytest.raises(InvalidRequestError):
        await client.reconcile(system_id, datetime(2026, 5, 1), START)
    with pytest.raises(InvalidRequestError):
        await client.reconcile(system_id, START - timedelta(days=1), START, step=timedelta(0))
    assert sim.request_count == before


@given(
    energies=st.lists(
        st.tuples(st.integers(0, 2000), st.integers(0, 2000)), min_size=1, max_size=96
    ),
    deleted=st.sets(st.integers(0, 95), max_size=10),
    rounding=st.floats(0.0, 0.999),
)
def test_any_deletion_is_found_and_rounding_never_is(
    energies: list[tuple[int, int]], deleted: set[int], rounding: float
) -> None:
    deleted = {k for k in deleted if k < len(energies)}
    data = {T0 + 900 * (k + 1): e for k, e in enumerate(energies)}
    end = T0 + 900 * len(energies)
    # The meters count the true (unrounded) energy: up to 1 Wh more per interval.
    slack = int(rounding * len(energies))
    charged = sum(c for c, _ in energies) + slack
    discharged = sum(d for _, d in energies)
    for k in deleted:
        del data[T0 + 900 * (k + 1)]
    span = check_span("s", data, (T0, 0, 0), (end, charged, discharged))
    assert set(span.missing) == {datetime.fromtimestamp(T0 + 900 * (k + 1), UTC) for k in deleted}
    lost_c = sum(energies[k][0] for k in deleted) + slack
    lost_d = sum(energies[k][1] for k in deleted)
    if lost_c > span.tolerance_wh or lost_d > span.tolerance_wh:
        assert span.verdict is Verdict.SHORT
    elif deleted:
        assert span.verdict is Verdict.MISSING_INTERVALS
    else:
        assert span.verdict is Verdict.OK
