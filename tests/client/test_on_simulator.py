"""The SDK end to end on the embedded simulator: every operation, as a user would call it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta

import pytest

from enphase_battery import (
    ApiError,
    AuthenticationError,
    BatteryMode,
    EnphaseClient,
    FileTokenStore,
    Granularity,
    NotFoundError,
    OAuth2Token,
    QuotaExceededError,
    RateLimits,
    TokenManager,
)
from enphase_battery.models import GridState, LoadControlMode
from enphase_battery.simulator import EnphaseSimulator

START = datetime(2026, 6, 1, 12, tzinfo=UTC)
FAST = RateLimits(100_000)


@pytest.fixture
async def sim() -> AsyncIterator[EnphaseSimulator]:
    async with EnphaseSimulator(
        seed=11, systems=3, encharges=2, start=START, history=timedelta(days=9)
    ) as simulator:
        yield simulator


@pytest.fixture
async def client(sim: EnphaseSimulator) -> AsyncIterator[EnphaseClient]:
    async with sim.make_client(rate_limits=FAST, max_retry_time=5) as api:
        yield api


async def test_discovery(sim: EnphaseSimulator, client: EnphaseClient) -> None:
    systems = await client.list_systems()
    assert tuple(s.system_id for s in systems) == sim.system_ids
    assert all(s.timezone for s in systems)
    devices = await client.get_system_devices(sim.system_ids[0])
    assert devices.encharge_serials == sim.encharge_serials(sim.system_ids[0])
    assert all(d.active for d in devices.devices.encharges)


async def test_battery_settings_round_trip_changes_the_battery(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    system_id = sim.system_ids[0]
    before = await client.get_system_battery_settings(system_id)
    assert before.battery_mode in set(BatteryMode)
    updated = await client.update_system_battery_settings(
        system_id, battery_mode="full backup", reserve_soc=100
    )
    assert updated.battery_mode is BatteryMode.FULL_BACKUP
    assert updated.reserve_soc == 100
    again = await client.get_system_battery_settings(system_id)
    assert again == updated
    # Full Backup at a 100 % reserve: the battery no longer discharges on grid.
    sim.clock.advance(timedelta(hours=6))
    telemetry = await client.get_battery_telemetry(
        system_id, START + timedelta(minutes=30), Granularity.DAY
    )
    assert telemetry.intervals
    assert all(iv.discharge.enwh == 0 for iv in telemetry.intervals)


async def test_storm_guard_and_grid_status(sim: EnphaseSimulator, client: EnphaseClient) -> None:
    system_id = sim.system_ids[1]
    await client.update_system_storm_guard(system_id, True)
    storm = await client.get_system_storm_guard(system_id)
    assert storm.storm_guard_status is True
    await client.update_system_storm_guard(system_id, False)
    assert (await client.get_system_storm_guard(system_id)).storm_guard_status is False

    assert (await client.get_system_grid_status(system_id)).grid_state is GridState.ON_GRID
    sim.set_grid_outage(system_id, True)
    assert (await client.get_system_grid_status(system_id)).grid_state is GridState.OFF_GRID


async def test_load_control_round_trip(sim: EnphaseSimulator, client: EnphaseClient) -> None:
    system_id = sim.system_ids[0]
    await client.update_system_load_control(
        system_id,
        name="NC1",
        mode=LoadControlMode.ADVANCED_BATTERY_POWERED,
        soc_low=30,
        essential_start_time=time(7, 30),
        essential_end_time=time(22, 0),
    )
    circuits = {
        c.name: c for c in (await client.get_system_load_control(system_id)).load_control_data
    }
    assert circuits["NC1"].mode is LoadControlMode.ADVANCED_BATTERY_POWERED
    assert circuits["NC1"].soc_low == 30
    assert circuits["NC1"].essential_start_time == 7 * 3600 + 30 * 60
    assert circuits["NC1"].essential_end_time == 22 * 3600


async def test_telemetry_matches_ground_truth(sim: EnphaseSimulator, client: EnphaseClient) -> None:
    system_id = sim.system_ids[0]
    start = START - timedelta(days=8)  # the newest intervals are not visible yet
    week = await client.get_battery_telemetry(system_id, start, "week")
    truth = sim.ground_truth_battery(system_id, start, start + timedelta(days=7))
    assert len(week.intervals) == len(truth) == 672
    for got, want in zip(week.intervals, truth, strict=True):
        assert int(got.end_at.timestamp()) == want.end_at
        assert (got.charge.enwh, got.discharge.enwh, got.soc.percent) == (
            want.charge_wh,
            want.discharge_wh,
            want.soc_percent,
        )
    serial = sim.encharge_serials(system_id)[0]
    one = await client.get_encharge_telemetry(system_id, serial, start, Granularity.DAY)
    assert len(one.intervals) == 96
    assert one.serial_number == serial


async def test_lifetime_equals_the_sum_of_telemetry(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    system_id = sim.system_ids[0]
    day = date(2026, 5, 28)
    lifetime = await client.get_battery_lifetime(system_id, day, day)
    telemetry = await client.get_battery_telemetry(system_id, start_date=day)
    assert lifetime.days[0].date == day
    assert lifetime.charge[0] == sum(iv.charge.enwh for iv in telemetry.intervals)
    assert lifetime.discharge[0] == sum(iv.discharge.enwh for iv in telemetry.intervals)


async def test_unknown_system_and_serial(sim: EnphaseSimulator, client: EnphaseClient) -> None:
    with pytest.raises(NotFoundError):
        await client.get_system_grid_status(999_999_999)
    with pytest.raises(NotFoundError):
        await client.get_encharge_telemetry(sim.system_ids[0], "999999999999")


async def test_future_start_is_a_422(sim: EnphaseSimulator, client: EnphaseClient) -> None:
    with pytest.raises(ApiError) as info:
        await client.get_battery_telemetry(sim.system_ids[0], START + timedelta(days=2))
    assert info.value.status == 422
    assert "future" in str(info.value)


async def test_real_token_expiry_and_rotation_with_a_token_file(tmp_path: object) -> None:
    from pathlib import Path

    store = FileTokenStore(Path(str(tmp_path)) / "token.json")
    async with EnphaseSimulator(
        seed=2, systems=1, start=START, access_token_lifetime=timedelta(seconds=1)
    ) as sim:
        auth = TokenManager(
            client_id=sim.client_id,
            client_secret=sim.client_secret,
            # Believed valid for an hour; the server says otherwise after a second.
            token=OAuth2Token(
                sim.token.access_token,
                sim.token.refresh_token,
                datetime.now(UTC) + timedelta(hours=1),
            ),
            token_url=sim.token_url,
            on_refresh=store.save,
        )
        async with (
            auth,
            EnphaseClient(
                api_key=sim.api_key, auth=auth, base_url=sim.base_url, rate_limits=FAST
            ) as client,
        ):
            system_id = sim.system_ids[0]
            await client.get_system_grid_status(system_id)
            await asyncio.sleep(1.2)
            await client.get_system_grid_status(system_id)  # 401 -> refresh -> retry
            assert sim.token_grants["refresh_token"] == 1
            saved = store.load()
            assert saved is not None
            assert saved.refresh_token != sim.token.refresh_token  # rotated and persisted
            sim.faults.revoke_tokens()
            with pytest.raises(AuthenticationError, match="auth login"):
                await client.get_system_grid_status(system_id)


async def test_injected_faults_are_retried(sim: EnphaseSimulator, client: EnphaseClient) -> None:
    system_id = sim.system_ids[0]
    sim.faults.fail_next(1, 500)
    sim.faults.fail_next(1, 503)
    sim.faults.malform_next(1)
    settings = await client.get_system_battery_settings(system_id)
    assert settings.system_id == system_id
    assert not sim.faults.pending


async def test_spent_monthly_quota() -> None:
    # The month is judged on the client's clock: run the simulator at the real now.
    async with (
        EnphaseSimulator(seed=5, systems=1, start=datetime.now(UTC)) as sim,
        sim.make_client(rate_limits=FAST) as client,
    ):
        sim.faults.exhaust_monthly_quota()
        with pytest.raises(QuotaExceededError):
            await client.get_system_grid_status(sim.system_ids[0])
        assert client.quota_remaining == 0
        requests = sim.request_count
        with pytest.raises(QuotaExceededError):
            await client.get_system_grid_status(sim.system_ids[0])
        assert sim.request_count == requests  # decided locally, nothing sent


async def test_make_client_follows_the_simulators_plan() -> None:
    async with (
        EnphaseSimulator(seed=1, systems=1, plan="watt", start=START) as sim,
        sim.make_client() as client,
    ):
        assert client.rate_limits == RateLimits.WATT
        assert client.token_manager is not None
        assert client.token_manager.token == sim.token
        assert (await client.get_system_grid_status(sim.system_ids[0])).system_id
