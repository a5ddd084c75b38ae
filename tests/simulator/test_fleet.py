"""The fleet simulator: uplinks (cellular batches, an outage's backfill), systems added and
removed, custom plans and the simulated minute window."""

from __future__ import annotations

from datetime import timedelta

import pytest

from enphase_battery import NotFoundError, RateLimitError, RateLimits
from enphase_battery.simulator import EnphaseSimulator
from enphase_battery.simulator.uplink import FleetMix, Uplink

HOUR = 3600


async def test_a_cellular_gateway_shows_its_data_in_six_hourly_batches() -> None:
    mix = FleetMix(cellular=1.0)
    async with EnphaseSimulator(seed=1, systems=1, encharges=1, fleet_mix=mix) as sim:
        (system_id,) = sim.system_ids
        uplink = sim.uplinks[system_id]
        assert uplink.kind == "cellular"
        async with sim.make_client() as client:
            (listed,) = await client.list_systems()
            assert listed.connection_type == "cellular"
            reports = set()
            for _ in range(24):
                sim.clock.advance(HOUR)
                (listed,) = await client.list_systems()
                assert listed.last_report_at is not None
                reports.add(listed.last_report_at)
        # 24 hours, a batch every 6: the last report moved about four times, not 96.
        assert 3 <= len(reports) <= 5


def test_an_offline_gateway_backfills_oldest_first_after_it_comes_back() -> None:
    uplink = Uplink("offline", offline_from=0.0, offline_until=86_400.0, backfill_s=4 * HOUR)
    early = uplink.visible_at(1_000.0, 900)
    late = uplink.visible_at(80_000.0, 79_200)
    assert 86_400 <= early < late <= 86_400 + 4 * HOUR
    assert uplink.visible_at(90_000.0, 90_000) == 90_000.0  # after the outage: as usual


async def test_devices_list_carries_each_encharges_own_last_report() -> None:
    async with EnphaseSimulator(seed=2, systems=1, encharges=2) as sim:
        (system_id,) = sim.system_ids
        first, second = sim.encharge_serials(system_id)
        sim.set_device_lag(second, timedelta(hours=3))
        sim.clock.advance(2 * HOUR)
        async with sim.make_client() as client:
            devices = await client.get_system_devices(system_id)
        reports = {d.serial_number: d.last_report_at for d in devices.devices.encharges}
        assert reports[first] is not None
        assert reports[second] is not None
        assert reports[first] > reports[second]


async def test_systems_added_and_removed_during_a_run() -> None:
    async with EnphaseSimulator(seed=3, systems=2, encharges=1) as sim, sim.make_client() as client:
        added = sim.add_system(encharges=2)
        removed = sim.system_ids[0]
        sim.remove_system(removed)
        ids = {s.system_id for s in await client.list_systems()}
        assert added in ids
        assert removed not in ids
        assert len(sim.encharge_serials(added)) == 2
        with pytest.raises(NotFoundError):
            await client.get_battery_telemetry(removed)


async def test_a_custom_plan_counts_its_minute_on_the_simulated_clock() -> None:
    plan = RateLimits(2, 60.0, 100)
    async with EnphaseSimulator(seed=4, systems=1, plan=plan, minute_clock="simulated") as sim:
        (system_id,) = sim.system_ids
        async with sim.make_client(rate_limits=RateLimits(1000, 1.0), max_retries=0) as client:
            await client.get_system_devices(system_id)
            await client.get_system_devices(system_id)
            with pytest.raises(RateLimitError):
                await client.get_system_devices(system_id)
            assert sim.limiter.refused["minute"] == 1
            sim.clock.advance(60)  # a new simulated minute, no real time passed
            await client.get_system_devices(system_id)
