"""The simulator's fast telemetry bodies say exactly what the plain per-interval rule says.

``battery_telemetry`` / ``encharge_telemetry`` add old intervals as whole slices and write
JSON in one formatting pass (that is what keeps a week under 2 ms of simulator CPU).  Here
each body is compared with a reference built the slow, obvious way: every interval of every
device checked with ``ArrivalModel.visible_at`` and the API's dict shapes built one by one,
over late uploads, device lags, an Encharge added mid-history and windows of every size.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enphase_battery.simulator import EnphaseSimulator
from enphase_battery.simulator.arrival import ArrivalModel
from enphase_battery.simulator.battery import INTERVAL_S, BatterySystem, Encharge
from enphase_battery.simulator.telemetry import (
    Window,
    battery_telemetry,
    encharge_telemetry,
    last_visible_end_at,
    parse_window,
)


def _percent(stored: float, capacity: float) -> int:
    return min(100, max(0, round(stored * 100.0 / capacity)))


def _reference_battery(
    system: BatterySystem, arrival: ArrivalModel, window: Window, now: float
) -> list[dict[str, Any]]:
    intervals = []
    for end_at in window.end_ats(system.last_end_at):
        charge = discharge = count = capacity = 0
        stored = 0.0
        for device in system.encharges:
            i = device.index(end_at)
            if 0 <= i < len(device) and arrival.visible_at(device, i) <= now:
                charge += device.charge_wh[i]
                discharge += device.discharge_wh[i]
                stored += device.stored_end_wh[i]
                capacity += device.capacity_wh
                count += 1
        if count:
            intervals.append(
                {
                    "end_at": end_at,
                    "charge": {"enwh": charge, "devices_reporting": count},
                    "discharge": {"enwh": discharge, "devices_reporting": count},
                    "soc": {"percent": _percent(stored, capacity), "devices_reporting": count},
                }
            )
    return intervals


def _reference_encharge(
    device: Encharge, arrival: ArrivalModel, window: Window, now: float
) -> list[dict[str, Any]]:
    intervals = []
    for end_at in window.end_ats(device.last_end_at):
        i = device.index(end_at)
        if 0 <= i < len(device) and arrival.visible_at(device, i) <= now:
            intervals.append(
                {
                    "end_at": end_at,
                    "charge": {"enwh": device.charge_wh[i]},
                    "discharge": {"enwh": device.discharge_wh[i]},
                    "soc": {"percent": _percent(device.stored_end_wh[i], device.capacity_wh)},
                }
            )
    return intervals


def _window(sim: EnphaseSimulator, system: BatterySystem, query: dict[str, str]) -> Window:
    now = sim.clock.timestamp()
    last = last_visible_end_at(system.encharges, sim.arrival, now, system.last_end_at)
    return parse_window(
        query,
        tz=system.tz,
        now=int(now),
        first_end_at=system.first_end_at,
        last_visible=last[0] if last else None,
    )


def _check_every_stream(sim: EnphaseSimulator, start_at: int, granularity: str) -> None:
    now = sim.clock.timestamp()
    for system_id in sim.system_ids:
        system = sim.system(system_id)
        window = _window(sim, system, {"start_at": str(start_at), "granularity": granularity})
        body = json.loads(battery_telemetry(system, sim.arrival, window, now))
        assert body["intervals"] == _reference_battery(system, sim.arrival, window, now)
        assert body["system_id"] == system_id
        assert body["start_at"] == window.start
        assert list(body)[-2:] == ["intervals", "last_reported_aggregate_soc"]
        for device in system.encharges:
            body = json.loads(encharge_telemetry(system, device, sim.arrival, window, now))
            assert body["intervals"] == _reference_encharge(device, sim.arrival, window, now)
            assert body["serial_number"] == device.serial


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    late_probability=st.sampled_from([0.0, 0.05, 0.5, 1.0]),
    latency_min=st.sampled_from([0, 15, 240]),
    lag_h=st.sampled_from([None, 1.0, 7.0]),
    add_encharge=st.booleans(),
    back_s=st.integers(0, 9 * 86_400),
    granularity=st.sampled_from(["15mins", "day", "week"]),
    advance_s=st.integers(0, 20_000),
)
def test_fast_bodies_match_the_per_interval_reference(
    seed: int,
    late_probability: float,
    latency_min: int,
    lag_h: float | None,
    add_encharge: bool,
    back_s: int,
    granularity: str,
    advance_s: int,
) -> None:
    sim = EnphaseSimulator(
        seed=seed,
        systems=1,
        encharges=2,
        history=timedelta(days=10),
        reporting_latency=timedelta(minutes=latency_min),
        late_probability=late_probability,
        late_delay=timedelta(hours=3),
    )
    system_id = sim.system_ids[0]
    serial = sim.encharge_serials(system_id)[0]
    if lag_h is not None:
        sim.set_device_lag(serial, timedelta(hours=lag_h))
    if add_encharge:
        sim.add_encharge(system_id)
    sim.clock.advance(timedelta(seconds=advance_s))
    _check_every_stream(sim, sim.clock.epoch() - back_s, granularity)


def test_an_empty_window_is_an_empty_list() -> None:
    # History starts now: the first interval is still in progress.
    sim = EnphaseSimulator(seed=3, systems=1, history=timedelta(0))
    system = sim.system(sim.system_ids[0])
    now = sim.clock.timestamp()
    window = Window(int(now) - 60, int(now), "day", by_date=False)
    body = json.loads(battery_telemetry(system, sim.arrival, window, now))
    assert body["intervals"] == []
    body = json.loads(encharge_telemetry(system, system.encharges[0], sim.arrival, window, now))
    assert body["intervals"] == []


def test_bodies_are_identical_for_identical_seeds() -> None:
    bodies = []
    for _ in range(2):
        sim = EnphaseSimulator(seed=42, systems=1, late_probability=0.1, history=timedelta(days=8))
        system = sim.system(sim.system_ids[0])
        now = sim.clock.timestamp()
        start = int(now) - 7 * 86_400
        window = Window(start, min(int(now), start + 7 * 86_400), "week", by_date=False)
        bodies.append(battery_telemetry(system, sim.arrival, window, now))
        bodies.append(encharge_telemetry(system, system.encharges[1], sim.arrival, window, now))
    assert bodies[:2] == bodies[2:]
    assert len(json.loads(bodies[0])["intervals"]) > 600


def test_a_week_served_over_http_is_the_reference_week() -> None:
    # The same through the app: the handler serves these bytes as application/json.
    import asyncio

    import aiohttp

    async def run() -> None:
        start = datetime(2026, 6, 1, tzinfo=UTC)
        async with EnphaseSimulator(
            seed=9, systems=1, start=start, late_probability=0.2, plan="unlimited"
        ) as sim:
            system_id = sim.system_ids[0]
            system = sim.system(system_id)
            start_at = sim.clock.epoch() - 7 * 86_400 + INTERVAL_S
            url = f"{sim.base_url}/api/v4/systems/{system_id}/telemetry/battery"
            params = {"key": sim.api_key, "start_at": str(start_at), "granularity": "week"}
            headers = {"Authorization": f"Bearer {sim.token.access_token}"}
            async with (
                aiohttp.ClientSession() as session,
                session.get(url, params=params, headers=headers) as response,
            ):
                assert response.status == 200
                assert response.content_type == "application/json"
                body = await response.json()
            window = _window(sim, system, {k: v for k, v in params.items() if k != "key"})
            now = sim.clock.timestamp()
            assert body["intervals"] == _reference_battery(system, sim.arrival, window, now)
            assert len(body["intervals"]) > 600

    asyncio.run(run())
