"""The fleet poller on the simulator over loopback HTTP, on a fast simulated clock."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enphase_battery import (
    FleetPoller,
    MemoryCheckpoint,
    RateLimits,
    SqliteCheckpoint,
    TelemetryInterval,
)
from enphase_battery.exceptions import CheckpointInUseError
from tests.support.fleet import (
    check_exactly_once,
    consume,
    consume_until_idle,
    fleet_client,
    fleet_simulator,
    streams_of,
    until,
)


@pytest.mark.slow
async def test_fifty_systems_every_interval_once_across_random_restarts(tmp_path: Path) -> None:
    rng = random.Random(5)
    async with fleet_simulator(
        systems=50, late_probability=0.05, late_delay=timedelta(hours=1)
    ) as sim:
        start = sim.clock.epoch() - 86_400
        start -= start % 900
        # The same start for every run, as the CLI remembers --since: a stream first seen
        # by a later run begins there too.
        since = datetime.fromtimestamp(start, UTC)
        sink: list[TelemetryInterval] = []
        path = tmp_path / "fleet.sqlite"
        # Four runs cut at random points, then one to the end of what there is (on a
        # loaded machine the cuts may come before some streams are reached).
        for seconds in [*(rng.uniform(0.5, 2.5) for _ in range(4)), None]:
            async with fleet_client(sim) as client:
                poller = FleetPoller(client, checkpoint=path, start_at=since)
                if seconds is None:
                    await consume_until_idle(poller, sink)
                else:
                    await consume(poller, sink, seconds)
        sim.clock.speed = 0
        store = SqliteCheckpoint(path)
        try:
            checked = await check_exactly_once(
                sim, store, sink, streams_of(sim, sim.system_ids), start
            )
        finally:
            await store.close()
        # About a day of history for each of the 100 streams (less for gateways offline
        # or on cellular, whose newest data is hours old).
        assert checked > 0.8 * 100 * 96
        assert sim.limiter.refused["minute"] == 0


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 1000),
    late_probability=st.sampled_from([0.0, 0.1, 0.3]),
    late_delay_h=st.sampled_from([0.5, 2.0, 5.0]),
    cellular=st.sampled_from([0.0, 0.5]),
    runs=st.lists(st.floats(0.2, 1.2), min_size=1, max_size=3),
)
def test_exactly_once_whatever_the_arrival_order(
    seed: int, late_probability: float, late_delay_h: float, cellular: float, runs: list[float]
) -> None:
    from enphase_battery.simulator.uplink import FleetMix

    async def scenario() -> None:
        mix = FleetMix(cellular=cellular, offline=0.2, batch_period_s=3 * 3600)
        async with fleet_simulator(
            seed=seed,
            systems=4,
            encharges=2,
            late_probability=late_probability,
            late_delay=timedelta(hours=late_delay_h),
            fleet_mix=mix,
        ) as sim:
            start = sim.clock.epoch() - 12 * 3600
            start -= start % 900
            store = MemoryCheckpoint()
            sink: list[TelemetryInterval] = []
            # Runs cut after random real durations, then one run until the poller has
            # nothing due: every stream is started and caught up however slow the
            # machine (a cut can come before a loaded machine has reached some stream).
            for seconds in [*runs, None]:
                async with fleet_client(sim) as client:
                    poller = FleetPoller(
                        client,
                        checkpoint=store,
                        start_at=datetime.fromtimestamp(start, UTC),
                        settle=timedelta(hours=1),
                    )
                    if seconds is None:
                        await consume_until_idle(poller, sink)
                    else:
                        await consume(poller, sink, seconds)
            sim.clock.speed = 0
            await check_exactly_once(sim, store, sink, streams_of(sim, sim.system_ids), start)
            assert sim.limiter.refused["minute"] == 0

    asyncio.run(scenario())


async def test_a_403_system_and_a_404_system_do_not_delay_the_rest() -> None:
    async with fleet_simulator(systems=5, fleet_mix=None) as sim:
        denied, removed, *healthy = sim.system_ids
        sim.faults.fail_next(10**6, status=403, path=f"/systems/{denied}/")
        sim.remove_system(removed)
        sink: list[TelemetryInterval] = []
        async with fleet_client(sim) as client:
            poller = FleetPoller(client, systems=[denied, removed, *healthy])
            await consume(poller, sink, 2.0)
            problems = {p.system_id: p for p in poller.problems}
            assert problems[denied].status == 403
            assert problems[removed].status == 404
            assert set(problems) == {denied, removed}
            now = sim.clock.time()
            for system_id in healthy:
                progress = poller.progress_of(system_id)
                assert progress.newest_delivered is not None
                # Fed like any system: the newest visible data is ~30 min old.
                assert now - progress.newest_delivered.timestamp() < 3600
            assert poller.progress.systems_in_backoff == 2
            # Backed off: a handful of tries, not one per poll.
            assert problems[denied].failures <= 3
        assert {iv.system_id for iv in sink} == set(healthy)


async def test_systems_added_and_removed_at_run_time() -> None:
    async with fleet_simulator(systems=3, fleet_mix=None) as sim:
        first, second, third = sim.system_ids
        sink: list[TelemetryInterval] = []

        def listings() -> int:
            return sim.path_counts["/api/v4/systems"]

        async with fleet_client(sim) as client:
            poller = FleetPoller(client, relist_every=timedelta(minutes=15))
            async with poller:
                task = asyncio.ensure_future(_take(poller, sink))
                try:
                    await until(
                        lambda: set(poller.system_ids) == {first, second, third},
                        "the three systems listed",
                    )
                    added = sim.add_system(encharges=1)
                    sim.remove_system(second)
                    poller.unfollow(third)
                    await until(
                        lambda: set(poller.system_ids) == {first, added},
                        "the added system followed, the removed and the unfollowed not",
                    )
                    # A later listing does not bring the unfollowed one back either.
                    seen = listings()
                    await until(lambda: listings() >= seen + 2, "two more listings")
                    assert set(poller.system_ids) == {first, added}
                    mark = len(sink)
                    poller.follow(third)
                    encharges = set(sim.encharge_serials(added))
                    await until(
                        lambda: (
                            {iv.source for iv in sink if iv.system_id == added}
                            == {"battery", *encharges}
                            and any(iv.system_id == third for iv in sink[mark:])
                        ),
                        "the added system's streams delivered, the re-followed one resumed",
                    )
                finally:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
        # Nothing of the removed system once it left the list.
        assert not [iv for iv in sink[mark:] if iv.system_id == second]


async def _take(poller: FleetPoller, sink: list[TelemetryInterval]) -> None:
    async for interval in poller:
        sink.append(interval)


async def test_the_fleet_keeps_to_its_share_of_a_small_plan_evenly() -> None:
    # 3,000 requests a month, 80 % for the fleet: 80 a day, far less than 8 systems
    # x 2 streams polled every 15 minutes would take (1,536 a day).
    plan = RateLimits(20, 60.0, 3_000, name="tiny")
    async with fleet_simulator(systems=8, plan=plan, speed=20_000.0, fleet_mix=None) as sim:
        sink: list[TelemetryInterval] = []
        started = sim.clock.time()
        async with fleet_client(sim, burst_s=6 * 3600) as client:
            poller = FleetPoller(client)
            await consume(poller, sink, 6.0)
            elapsed = sim.clock.time() - started
            per_system = [poller.progress_of(s).requests for s in sim.system_ids]
        month_s = 30 * 86_400
        budget = 0.8 * 3_000
        allowed = budget * elapsed / month_s + budget * 6 * 3600 / month_s + 2
        assert elapsed > 86_400  # more than a simulated day
        assert sim.limiter.month_used <= allowed
        assert sim.limiter.month_used >= 0.7 * budget * elapsed / month_s  # and it spends it
        assert sim.limiter.refused == {"minute": 0, "month": 0}
        # Evenly: every system got its turn, none starved.
        assert min(per_system) >= 0.5 * max(per_system)


async def test_a_second_fleet_poller_on_the_same_checkpoint_is_refused(tmp_path: Path) -> None:
    async with fleet_simulator(systems=2, fleet_mix=None) as sim, fleet_client(sim) as client:
        path = tmp_path / "fleet.sqlite"
        async with FleetPoller(client, checkpoint=path) as first:
            await anext(first)
            with pytest.raises(CheckpointInUseError):
                async with FleetPoller(client, checkpoint=path):
                    pass


async def test_a_few_systems_of_a_big_account_are_polled_without_listing_it_all() -> None:
    async with fleet_simulator(systems=250, history=timedelta(hours=6), fleet_mix=None) as sim:
        followed = list(sim.system_ids[:2])
        sink: list[TelemetryInterval] = []
        async with fleet_client(sim) as client:
            poller = FleetPoller(client, systems=followed)
            await consume(poller, sink, 3.0)  # about 90 simulated minutes
        # One listing (3 pages) found it cheaper to poll the two systems directly.
        assert sim.path_counts["/api/v4/systems"] == 3
        assert {iv.system_id for iv in sink} == set(followed)
        newest = max(iv.end_at for iv in sink if iv.system_id == followed[0])
        assert sim.clock.time() - newest.timestamp() < 3600  # kept fresh all the same
