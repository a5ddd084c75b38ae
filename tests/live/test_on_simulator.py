"""live_data and the "now" endpoints end to end on the simulator."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from enphase_battery import EnphaseClient, InvalidRequestError, PermissionDeniedError, RateLimits
from enphase_battery.live import LiveBudget, LiveSession
from enphase_battery.live.now import battery_now
from enphase_battery.models.live import LiveFrame, LiveSource
from enphase_battery.simulator import EnphaseSimulator
from enphase_battery.simulator.now import IDLE_BELOW_W

FAST = RateLimits(100_000)
START = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
async def sim() -> AsyncIterator[EnphaseSimulator]:
    async with EnphaseSimulator(
        seed=5,
        start=START,
        history=timedelta(days=3),
        plan="kilowatt",
        enforce_plan_access=True,
        live_frame_period_s=0.02,
        live_duration_scale=0.005,
    ) as simulator:
        yield simulator


@pytest.fixture
async def client(sim: EnphaseSimulator) -> AsyncIterator[EnphaseClient]:
    async with sim.make_client(rate_limits=FAST, max_retry_time=5) as api:
        yield api


async def take(session: LiveSession, count: int) -> list[LiveFrame]:
    frames: list[LiveFrame] = []

    async def run() -> None:
        async for frame in session:
            frames.append(frame)
            if len(frames) >= count:
                return

    await asyncio.wait_for(run(), 10)
    return frames


def admin(sim: EnphaseSimulator, path: str, body: object | None = None) -> dict[str, object]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        sim.base_url + path, data=data, method="POST" if data else "GET"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        answer: dict[str, object] = json.load(response)
        return answer


async def test_live_frames_come_from_the_battery_physics(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    system_id = sim.system_ids[0]
    async with client.live(system_id, budget=LiveBudget(total=1), duration_s=30) as live:
        (frame,) = await take(live, 1)
    system = sim.system(system_id)
    latest = await client.get_latest_telemetry(system_id)
    assert frame.source is LiveSource.LIVE
    assert frame.timestamp == START
    assert frame.battery_soc == system.current_soc_percent()
    assert frame.battery_mode is not None
    assert frame.battery_mode.value == system.settings.battery_mode
    assert frame.grid_status is not None
    assert frame.grid_status.value == "On Grid"
    # Live is the interval just ended; latest_telemetry waits for the gateway's upload.
    (newest,) = sim.ground_truth_battery(system_id, START - timedelta(minutes=15), START)
    assert frame.battery_power == (newest.discharge_wh - newest.charge_wh) * 4
    assert latest.last_report_at is not None
    assert latest.last_report_at < START
    assert frame.pv_power == round(system.last_solar_w)
    assert frame.consumption_power == round(system.last_load_w)
    assert frame.battery_discharge_w is not None
    assert frame.grid_power == frame.consumption_power - frame.pv_power - frame.battery_discharge_w


async def test_staying_live_reconnects_and_the_spend_matches_the_server(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    system_id = sim.system_ids[0]
    budget = LiveBudget(total=3)
    sources: list[LiveSource] = []
    async with client.live(
        system_id, budget=budget, duration_s=30, fallback_interval_s=0.05
    ) as live:
        async for frame in live:
            sources.append(frame.source)
            if frame.source is LiveSource.LATEST:
                break
        spend = live.spend
        stats = live.stats
    # Three streams of 0.15 s at a frame per 0.02 s, then the budget is spent.
    assert sources.count(LiveSource.LIVE) >= 9
    assert stats.connections == 3
    assert stats.reconnects == 3 - 1
    assert spend.connections == sim.live.connections == 3
    assert spend.spent == Decimal("0.30") == sim.live.cost
    assert sim.live.durations == [30, 30, 30]
    state = await asyncio.to_thread(admin, sim, "/__admin/state")
    live_state = state["live"]
    assert isinstance(live_state, dict)
    assert live_state["connections"] == 3
    assert live_state["cost"] == "0.30"


async def test_watt_plan_gets_403_and_polls_latest() -> None:
    async with (
        EnphaseSimulator(seed=5, start=START, plan="watt", enforce_plan_access=True) as watt,
        watt.make_client(rate_limits=FAST) as api,
    ):
        system_id = watt.system_ids[0]
        async with api.live(system_id, budget=LiveBudget(total=5)) as live:
            (frame,) = await take(live, 1)
            assert frame.source is LiveSource.LATEST
            assert "403" in (live.stats.fallback_reason or "")
        async with api.live(system_id, budget=LiveBudget(total=5), fallback=False) as live:
            with pytest.raises(PermissionDeniedError):
                await take(live, 1)
        assert watt.live.connections == 0
        assert watt.live.refused == 2
        # battery_now(live=True) answers the two-request way where live data is refused.
        now = await battery_now(api, system_id, live=True)
        assert now.source == "latest"
        assert now.soc_percent is not None
        assert watt.live.refused == 3


async def test_error_events_on_demand_through_admin(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    system_id = sim.system_ids[0]
    await asyncio.to_thread(admin, sim, "/__admin/live", {"error": 472, "after_frames": 1})
    async with client.live(
        system_id, budget=LiveBudget(total=5), duration_s=30, fallback_interval_s=0.05
    ) as live:
        frames = await take(live, 3)
    assert [f.source for f in frames] == [LiveSource.LIVE, LiveSource.LATEST, LiveSource.LATEST]
    assert sim.live.connections == 1


async def test_status_and_cut_faults(sim: EnphaseSimulator, client: EnphaseClient) -> None:
    system_id = sim.system_ids[0]
    sim.live.refuse_next(551)
    sim.live.cut_next(after_frames=1)
    async with client.live(system_id, budget=LiveBudget(total=5), duration_s=30) as live:
        frames = await take(live, 3)
        stats = live.stats
    assert all(f.source is LiveSource.LIVE for f in frames)
    assert stats.cut_events == 1
    assert sim.live.refused == 1


async def test_invalid_duration_codes_from_the_simulator(sim: EnphaseSimulator) -> None:
    # The SDK never sends these (it checks 30-300 first); the simulator answers them.
    import aiohttp

    url = f"{sim.base_url}/api/v4/systems/{sim.system_ids[0]}/live_data"
    headers = {"Authorization": f"Bearer {sim.token.access_token}"}
    async with aiohttp.ClientSession() as http:
        for duration, code in (("10", 461), ("301", 462), ("abc", 463)):
            async with http.get(
                url, params={"key": sim.api_key}, headers={**headers, "duration": duration}
            ) as response:
                assert response.status == code
                body = await response.json()
                assert body["error"]["code"] == code
                assert body["error"]["status"] == "INVALID_DURATION"


async def test_latest_telemetry_matches_the_physics_and_goes_null_when_stale(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    system_id = sim.system_ids[0]
    latest = await client.get_latest_telemetry(system_id)
    serials = sim.encharge_serials(system_id)
    assert len(latest.devices.encharges) == len(serials)
    report = latest.last_report_at
    assert report is not None
    end_at = report.timestamp()
    expected = 0
    for serial in serials:
        (iv,) = sim.ground_truth_encharge(system_id, serial, end_at - 900, end_at)
        out_w = (iv.discharge_wh - iv.charge_wh) * 4
        expected += 0 if abs(out_w) < IDLE_BELOW_W else out_w
    assert latest.battery_discharge_w == expected
    assert latest.battery_state is not None
    # A gateway that stops reporting: after 7 days the values are null.
    for serial in serials:
        sim.set_device_lag(serial, timedelta(days=30))
    sim.clock.advance(timedelta(days=8))
    stale = await client.get_latest_telemetry(system_id)
    assert all(d.power is None and d.last_report_at is None for d in stale.devices.encharges)
    assert stale.battery_discharge_w is None


async def test_meter_counters_add_up_to_the_intervals(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    system_id = sim.system_ids[0]
    serial = sim.encharge_serials(system_id)[0]
    first = await client.get_storage_meter_readings(system_id, START - timedelta(days=2))
    second = await client.get_storage_meter_readings(system_id)
    a, b = first.by_serial()[serial], second.by_serial()[serial]
    assert a.read_at is not None
    assert b.read_at is not None
    assert a.read_at == START - timedelta(days=2)
    assert b.read_at < START  # the newest uploaded interval, not now
    truth = sim.ground_truth_encharge(system_id, serial, a.read_at, b.read_at)
    assert len(truth) == (b.read_at - a.read_at) // timedelta(minutes=15)
    assert a.value_charged is not None
    assert b.value_charged is not None
    assert a.value_discharged is not None
    assert b.value_discharged is not None
    assert b.value_charged - a.value_charged == sum(iv.charge_wh for iv in truth)
    assert b.value_discharged - a.value_discharged == sum(iv.discharge_wh for iv in truth)
    # Lifetime counters: they did not start at zero with the simulated history.
    assert a.value_charged > 0


async def test_summary_battery_fields(sim: EnphaseSimulator, client: EnphaseClient) -> None:
    system_id = sim.system_ids[0]
    summary = await client.get_system_summary(system_id, date(2026, 5, 31))
    system = sim.system(system_id)
    assert summary.summary_date == date(2026, 5, 31)
    assert summary.battery_capacity_wh == sum(d.capacity_wh for d in system.encharges)
    assert summary.battery_charge_w == sum(d.model.max_power_w for d in system.encharges)
    assert summary.last_interval_end_at is not None
    assert summary.last_interval_end_at <= START


async def test_now_endpoints_validate_before_sending(
    sim: EnphaseSimulator, client: EnphaseClient
) -> None:
    system_id = sim.system_ids[0]
    before = sim.request_count
    with pytest.raises(InvalidRequestError):
        await client.get_storage_meter_readings(system_id, datetime(2026, 5, 1))  # naive
    with pytest.raises(InvalidRequestError):
        await client.get_system_summary(system_id, START)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        await client.get_latest_telemetry(-1)
    assert sim.request_count == before


async def test_battery_now_latest_and_live(sim: EnphaseSimulator, client: EnphaseClient) -> None:
    system_id = sim.system_ids[0]
    before = sim.request_count
    now = await battery_now(client, system_id)
    assert sim.request_count - before == 2
    telemetry = await client.get_battery_telemetry(system_id)
    latest = await client.get_latest_telemetry(system_id)
    assert now.source == "latest"
    assert now.soc_percent == telemetry.last_reported_aggregate_soc
    assert now.battery_power == latest.battery_discharge_w
    assert now.as_of == latest.last_report_at
    assert now.grid_state is None
    assert now.describe().startswith(f"SoC {now.soc_percent} % | ")
    # Kilowatt has no system configuration: asking for the grid state is a 403.
    with pytest.raises(PermissionDeniedError):
        await battery_now(client, system_id, grid=True)
    live = await battery_now(client, system_id, live=True)
    assert live.source == "live"
    assert live.soc_percent == sim.system(system_id).current_soc_percent()
    assert live.grid_state is not None
    assert sim.live.connections == 1
