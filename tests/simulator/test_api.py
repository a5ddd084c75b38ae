"""The simulator, spoken to over real loopback HTTP with a plain aiohttp session."""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from enphase_battery.simulator import (
    CHARGE_EFFICIENCY,
    DISCHARGE_EFFICIENCY,
    SIMULATOR_KEY,
    EnphaseSimulator,
    SimClock,
    make_app,
    serve,
)
from enphase_battery.simulator.cli import add_simulate_parser, build_parser

START = datetime(2026, 6, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


class Api:
    """A thin HTTP helper: every call goes over the socket to the simulator."""

    def __init__(self, sim: EnphaseSimulator, session: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.session = session
        self.access_token = sim.token.access_token
        self.refresh_token = sim.token.refresh_token

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        query = {"key": self.sim.api_key, **{k: str(v) for k, v in params.items()}}
        async with self.session.get(
            self.sim.base_url + "/api/v4" + path, params=query, headers=self._headers()
        ) as response:
            return response.status, await response.json(content_type=None)

    async def put(self, path: str, body: Any) -> tuple[int, Any]:
        async with self.session.put(
            self.sim.base_url + "/api/v4" + path,
            params={"key": self.sim.api_key},
            headers=self._headers(),
            json=body,
        ) as response:
            return response.status, await response.json(content_type=None)

    async def token(self, basic: str | None = "default", **params: str) -> tuple[int, Any]:
        headers = {}
        if basic == "default":
            raw = f"{self.sim.client_id}:{self.sim.client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        elif basic is not None:
            headers["Authorization"] = basic
        async with self.session.post(
            self.sim.token_url, params=params, headers=headers
        ) as response:
            return response.status, await response.json(content_type=None)

    async def telemetry(self, system_id: int, **params: Any) -> dict[str, Any]:
        status, body = await self.get(f"/systems/{system_id}/telemetry/battery", **params)
        assert status == 200, body
        return dict(body)

    async def encharge(self, system_id: int, serial: str, **params: Any) -> dict[str, Any]:
        path = f"/systems/{system_id}/devices/encharges/{serial}/telemetry"
        status, body = await self.get(path, **params)
        assert status == 200, body
        return dict(body)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def open_api(session: aiohttp.ClientSession, **kwargs: Any) -> tuple[EnphaseSimulator, Api]:
    kwargs.setdefault("start", START)
    kwargs.setdefault("history", timedelta(days=2))
    sim = EnphaseSimulator(**kwargs)
    await sim.start()
    return sim, Api(sim, session)


@pytest.fixture
async def sim_api(session: aiohttp.ClientSession) -> AsyncIterator[tuple[EnphaseSimulator, Api]]:
    sim, api = await open_api(session, seed=3)
    try:
        yield sim, api
    finally:
        await sim.close()


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def local_hour(end_at: int, tz: str) -> float:
    moment = datetime.fromtimestamp(end_at - 450, UTC).astimezone(ZoneInfo(tz))
    return moment.hour + moment.minute / 60


# -- discovery and shapes --------------------------------------------------------------


async def test_systems_envelope_and_paging(session: aiohttp.ClientSession) -> None:
    sim, api = await open_api(session, systems=5, encharges=1)
    async with sim:
        status, body = await api.get("/systems", size=2)
        assert status == 200
        assert set(body) == {"total", "current_page", "size", "count", "items", "systems"}
        assert (body["total"], body["current_page"], body["size"], body["count"]) == (5, 1, 2, 2)
        assert body["items"] == "systems"
        seen = []
        for page in (1, 2, 3):
            status, body = await api.get("/systems", size=2, page=page)
            seen += [s["system_id"] for s in body["systems"]]
        assert seen == sorted(sim.system_ids)
        assert body["count"] == 1
        status, body = await api.get("/systems", size=2, page=4)
        assert (status, body["count"], body["systems"]) == (200, 0, [])
        status, body = await api.get("/systems", sort_by="-id")
        assert [s["system_id"] for s in body["systems"]] == sorted(sim.system_ids, reverse=True)
        system = body["systems"][0]
        for field in ("name", "timezone", "address", "status", "last_report_at", "operational_at"):
            assert field in system
        assert system["energy_lifetime"] == system["energy_today"] == system["system_size"] == -1
        ZoneInfo(system["timezone"])
        status, body = await api.get("/systems", size=101)
        assert status == 422
        assert body["code"] == 422


async def test_devices_lists_encharges_gateway_and_micros(
    sim_api: tuple[EnphaseSimulator, Api],
) -> None:
    sim, api = sim_api
    system_id = sim.system_ids[0]
    status, body = await api.get(f"/systems/{system_id}/devices")
    assert status == 200
    assert body["items"] == "devices"
    devices = body["devices"]
    serials = [e["serial_number"] for e in devices["encharges"]]
    assert tuple(serials) == sim.encharge_serials(system_id)
    assert len(serials) == 2
    assert devices["gateways"]
    assert devices["micros"]
    assert body["total_devices"] == sum(len(v) for v in devices.values())
    encharge = devices["encharges"][0]
    for field in ("id", "serial_number", "name", "sku", "part_number", "status", "active"):
        assert field in encharge


async def test_battery_telemetry_shape(sim_api: tuple[EnphaseSimulator, Api]) -> None:
    sim, api = sim_api
    system_id = sim.system_ids[0]
    start = epoch(START - timedelta(days=1, hours=1))
    body = await api.telemetry(system_id, start_at=start)
    assert set(body) == {
        "system_id",
        "granularity",
        "total_devices",
        "start_at",
        "end_at",
        "items",
        "intervals",
        "last_reported_aggregate_soc",
    }
    assert (body["system_id"], body["granularity"], body["total_devices"]) == (system_id, "day", 2)
    assert (body["start_at"], body["end_at"], body["items"]) == (start, start + 86400, "intervals")
    assert len(body["intervals"]) == 96
    ends = [i["end_at"] for i in body["intervals"]]
    assert ends == list(range(start + 900, start + 86401, 900))
    interval = body["intervals"][0]
    assert set(interval) == {"end_at", "charge", "discharge", "soc"}
    assert set(interval["charge"]) == {"enwh", "devices_reporting"}
    assert set(interval["soc"]) == {"percent", "devices_reporting"}
    assert body["last_reported_aggregate_soc"].endswith("%")
    # 15mins and week spans; start_date echoes date names.
    body = await api.telemetry(system_id, start_at=start, granularity="15mins")
    assert [i["end_at"] for i in body["intervals"]] == [start + 900]
    body = await api.telemetry(system_id, start_at=epoch(START) - 7 * 86400 + 86400 * 5)
    body = await api.telemetry(system_id, granularity="week", start_at=epoch(START) - 2 * 86400)
    assert body["end_at"] == epoch(START)
    assert len(body["intervals"]) <= 192
    body = await api.telemetry(system_id, start_date="2026-05-30")
    assert "start_date" in body
    assert "start_at" not in body
    tz = ZoneInfo("America/Los_Angeles")
    assert body["start_date"] == epoch(datetime(2026, 5, 30, tzinfo=tz))


async def test_default_window_is_local_midnight_today(
    sim_api: tuple[EnphaseSimulator, Api],
) -> None:
    sim, api = sim_api
    for system_id in sim.system_ids:
        _, systems = await api.get(f"/systems/{system_id}")
        tz = ZoneInfo(systems["timezone"])
        body = await api.telemetry(system_id)
        local_now = START.astimezone(tz)
        midnight = datetime(local_now.year, local_now.month, local_now.day, tzinfo=tz)
        assert body["start_at"] == epoch(midnight)
        assert body["end_at"] == epoch(START)


async def test_encharge_telemetry_shape(sim_api: tuple[EnphaseSimulator, Api]) -> None:
    sim, api = sim_api
    system_id = sim.system_ids[1]
    serial = sim.encharge_serials(system_id)[1]
    start = epoch(START - timedelta(hours=6))
    body = await api.encharge(system_id, serial, start_at=start)
    assert set(body) == {
        "system_id",
        "serial_number",
        "granularity",
        "total_devices",
        "start_at",
        "end_at",
        "items",
        "intervals",
        "last_reported_time",
        "last_reported_soc",
    }
    assert (body["serial_number"], body["total_devices"]) == (serial, 1)
    interval = body["intervals"][0]
    assert set(interval) == {"end_at", "charge", "discharge", "soc"}
    assert set(interval["charge"]) == {"enwh"}
    assert body["last_reported_soc"] == f"{body['intervals'][-1]['soc']['percent']}%"
    assert body["last_reported_time"] == body["intervals"][-1]["end_at"]


# -- physics -----------------------------------------------------------------------------


def test_energy_conservation_per_encharge() -> None:
    sim = EnphaseSimulator(seed=5, start=START, history=timedelta(days=5))
    for system_id in sim.system_ids:
        capacity = sim.system(system_id).encharges[0].capacity_wh
        serial = sim.encharge_serials(system_id)[0]
        truth = sim.ground_truth_encharge(system_id, serial, 0, START)
        assert len(truth) == 5 * 96
        assert sum(i.charge_wh for i in truth) > capacity
        assert sum(i.discharge_wh for i in truth) > capacity
        for before, after in itertools.pairwise(truth):
            assert not (after.charge_wh and after.discharge_wh)
            stored_delta = after.charge_wh * CHARGE_EFFICIENCY - (
                after.discharge_wh / DISCHARGE_EFFICIENCY
            )
            soc_delta_wh = (after.soc_percent - before.soc_percent) * capacity / 100
            # Two SoC roundings of half a percent each.
            assert abs(soc_delta_wh - stored_delta) <= capacity * 0.01 + 1e-9
        # And over the whole run, errors do not accumulate.
        total = sum(
            i.charge_wh * CHARGE_EFFICIENCY - i.discharge_wh / DISCHARGE_EFFICIENCY
            for i in truth[1:]
        )
        assert abs((truth[-1].soc_percent - truth[0].soc_percent) * capacity / 100 - total) <= (
            capacity * 0.01
        )


async def test_soc_bounded_and_reserve_respected_on_grid(
    sim_api: tuple[EnphaseSimulator, Api],
) -> None:
    sim, api = sim_api
    for system_id in sim.system_ids:
        _, settings = await api.get(f"/systems/config/{system_id}/battery_settings")
        reserve = settings["reserve_soc"]
        socs = [i.soc_percent for i in sim.ground_truth_battery(system_id, 0, START)]
        assert all(0 <= soc <= 100 for soc in socs)
        assert min(socs) >= reserve
        for serial in sim.encharge_serials(system_id):
            device_socs = [
                i.soc_percent for i in sim.ground_truth_encharge(system_id, serial, 0, START)
            ]
            assert min(device_socs) >= reserve
            assert max(device_socs) <= 100
    # The reserve actually binds on the self-consumption site: it reaches it and stops.
    socs = [i.soc_percent for i in sim.ground_truth_battery(sim.system_ids[0], 0, START)]
    assert min(socs) == 20
    assert max(socs) == 100


async def test_off_grid_drains_below_reserve(sim_api: tuple[EnphaseSimulator, Api]) -> None:
    sim, api = sim_api
    system_id = sim.system_ids[0]
    sim.clock.advance(timedelta(hours=8))  # 01:00 local: dark, the house runs on the battery
    soc = sim.ground_truth_battery(system_id, 0, sim.clock.now())[-1].soc_percent
    # Pin the reserve at the current charge: on grid the battery would now sit still.
    status, _ = await api.put(f"/systems/config/{system_id}/battery_settings", {"reserve_soc": soc})
    assert status == 200
    sim.set_grid_outage(system_id, True)
    status, body = await api.get(f"/systems/config/{system_id}/grid_status")
    assert (status, body["grid_state"]) == (200, "Off Grid")
    outage_start = sim.clock.now()
    sim.clock.advance(timedelta(hours=4))
    night = sim.ground_truth_battery(system_id, outage_start, sim.clock.now())
    assert all(i.discharge_wh > 0 for i in night)
    assert night[-1].soc_percent < soc - 10
    assert min(i.soc_percent for i in night) >= 0
    sim.set_grid_outage(system_id, False)
    _, body = await api.get(f"/systems/config/{system_id}/grid_status")
    assert body["grid_state"] == "On Grid"
    assert body["last_report_date"] <= sim.clock.epoch()
    # Back on grid and below the reserve: no more discharge.
    back = sim.clock.now()
    sim.clock.advance(timedelta(hours=1))
    assert all(
        i.discharge_wh == 0 for i in sim.ground_truth_battery(system_id, back, sim.clock.now())
    )


def _evening_discharge(sim: EnphaseSimulator, system_id: int, hours: int) -> int:
    now = sim.clock.now()
    sim.clock.advance(timedelta(hours=hours))
    return sum(i.discharge_wh for i in sim.ground_truth_battery(system_id, now, sim.clock.now()))


async def test_put_reserve_and_mode_change_later_telemetry(session: aiohttp.ClientSession) -> None:
    baseline = EnphaseSimulator(seed=3, start=START, history=timedelta(days=2))
    system_id = baseline.system_ids[0]
    assert _evening_discharge(baseline, system_id, 4) > 2000

    sim, api = await open_api(session, seed=3)
    async with sim:
        before = await api.telemetry(system_id, start_at=epoch(START) - 3600)
        status, body = await api.put(
            f"/systems/config/{system_id}/battery_settings", {"reserve_soc": 100}
        )
        assert (status, body["reserve_soc"]) == (200, 100)
        _, body = await api.get(f"/systems/config/{system_id}/battery_settings")
        assert body["reserve_soc"] == 100
        sim.clock.advance(timedelta(hours=5))
        after = await api.telemetry(system_id, start_at=epoch(START) - 3600)
        # History before the PUT is unchanged; afterwards the battery holds.
        assert after["intervals"][: len(before["intervals"])] == before["intervals"]
        later = [i for i in after["intervals"] if i["end_at"] > epoch(START)]
        assert len(later) >= 16
        assert all(i["discharge"]["enwh"] == 0 for i in later)

        # Full Backup with a low reserve still never discharges on grid.
        status, body = await api.put(
            f"/systems/config/{system_id}/battery_settings",
            {"battery_mode": "Full Backup", "reserve_soc": 10},
        )
        assert (status, body["battery_mode"], body["reserve_soc"]) == (200, "Full Backup", 10)
        assert _evening_discharge(sim, system_id, 24) == 0
        status, body = await api.put(
            f"/systems/config/{system_id}/battery_settings", {"battery_mode": "Self-consumption"}
        )
        assert body["battery_mode"] == "Self-consumption"
        assert _evening_discharge(sim, system_id, 24) > 2000


async def test_savings_mode_discharges_in_the_evening_peak(
    sim_api: tuple[EnphaseSimulator, Api],
) -> None:
    sim, api = sim_api
    system_id = sim.system_ids[0]
    status, body = await api.put(
        f"/systems/config/{system_id}/battery_settings",
        {"battery_mode": "Savings Mode", "energy_independence": "disabled"},
    )
    assert (status, body["battery_mode"], body["energy_independence"]) == (
        200,
        "Savings Mode",
        "disabled",
    )
    start = sim.clock.now()
    sim.clock.advance(timedelta(days=2))
    intervals = sim.ground_truth_battery(system_id, start, sim.clock.now())
    discharging = [i for i in intervals if i.discharge_wh]
    assert discharging
    assert all(17 <= local_hour(i.end_at, "America/Los_Angeles") < 21 for i in discharging)


async def test_storm_guard_with_alert_charges_to_full(
    sim_api: tuple[EnphaseSimulator, Api],
) -> None:
    sim, api = sim_api
    system_id = sim.system_ids[0]
    sim.clock.advance(timedelta(hours=11))  # 04:00 local, dark, after a night of discharge
    assert sim.ground_truth_battery(system_id, 0, sim.clock.now())[-1].soc_percent < 50
    status, body = await api.put(
        f"/systems/config/{system_id}/storm_guard", {"storm_guard_status": "enabled"}
    )
    assert status == 200
    assert body["storm_guard_status"] == "Enabled (Inactive)"
    sim.set_storm_alert(system_id, True)
    _, body = await api.get(f"/systems/config/{system_id}/storm_guard")
    assert body == {"system_id": system_id, "storm_guard_status": "enabled", "storm_alert": "true"}
    alert_at = sim.clock.now()
    sim.clock.advance(timedelta(hours=2, minutes=30))
    intervals = sim.ground_truth_battery(system_id, alert_at, sim.clock.now())
    # Charging before sunrise comes from the grid.
    assert intervals[0].charge_wh > 1000
    assert local_hour(intervals[0].end_at, "America/Los_Angeles") < 6
    assert intervals[-1].soc_percent == 100
    body = await api.telemetry(system_id, start_at=epoch(alert_at), granularity="15mins")
    assert body["intervals"][0]["charge"]["enwh"] == intervals[0].charge_wh


async def test_system_telemetry_is_sum_of_encharges(sim_api: tuple[EnphaseSimulator, Api]) -> None:
    sim, api = sim_api
    for system_id in sim.system_ids:
        start = epoch(START - timedelta(days=1, hours=1))
        system = await api.telemetry(system_id, start_at=start)
        devices = [
            await api.encharge(system_id, serial, start_at=start)
            for serial in sim.encharge_serials(system_id)
        ]
        capacities = [d.capacity_wh for d in sim.system(system_id).encharges]
        assert len(system["intervals"]) == 96
        for k, interval in enumerate(system["intervals"]):
            parts = [d["intervals"][k] for d in devices]
            assert all(p["end_at"] == interval["end_at"] for p in parts)
            assert interval["charge"]["enwh"] == sum(p["charge"]["enwh"] for p in parts)
            assert interval["discharge"]["enwh"] == sum(p["discharge"]["enwh"] for p in parts)
            weighted = sum(
                p["soc"]["percent"] * c for p, c in zip(parts, capacities, strict=True)
            ) / sum(capacities)
            assert abs(interval["soc"]["percent"] - weighted) <= 1
            assert interval["soc"]["devices_reporting"] == 2


async def test_lifetime_equals_sum_of_daily_telemetry(session: aiohttp.ClientSession) -> None:
    sim, api = await open_api(session, seed=9, history=timedelta(days=5))
    async with sim:
        for system_id in sim.system_ids:
            status, lifetime = await api.get(f"/systems/{system_id}/battery_lifetime")
            assert status == 200
            assert set(lifetime) == {"system_id", "start_date", "charge", "discharge", "meta"}
            assert set(lifetime["meta"]) >= {"status", "last_report_at", "operational_at"}
            first = date.fromisoformat(lifetime["start_date"])
            assert len(lifetime["charge"]) == len(lifetime["discharge"]) >= 5
            for k, (charge, discharge) in enumerate(
                zip(lifetime["charge"], lifetime["discharge"], strict=True)
            ):
                day = (first + timedelta(days=k)).isoformat()
                body = await api.telemetry(system_id, start_date=day)
                assert charge == sum(i["charge"]["enwh"] for i in body["intervals"])
                assert discharge == sum(i["discharge"]["enwh"] for i in body["intervals"])
            assert sum(lifetime["charge"]) > 0
            status, window = await api.get(
                f"/systems/{system_id}/battery_lifetime",
                start_date=(first + timedelta(days=1)).isoformat(),
                end_date=(first + timedelta(days=2)).isoformat(),
            )
            assert window["charge"] == lifetime["charge"][1:3]


# -- data arrival --------------------------------------------------------------------------


async def test_reporting_latency_hides_recent_intervals(
    sim_api: tuple[EnphaseSimulator, Api],
) -> None:
    sim, api = sim_api
    system_id = sim.system_ids[0]
    start = epoch(START) - 3600
    body = await api.telemetry(system_id, start_at=start)
    # Latency 15 min + jitter: the interval that just ended is not visible yet.
    assert body["intervals"][-1]["end_at"] <= epoch(START) - 900
    sim.clock.advance(timedelta(minutes=20))
    body = await api.telemetry(system_id, start_at=start)
    assert body["intervals"][-1]["end_at"] >= epoch(START)
    # A start past the last visible interval but not in the future: empty list.
    body = await api.telemetry(system_id, start_at=sim.clock.epoch() - 60)
    assert body["intervals"] == []


async def test_partial_devices_reporting_then_complete(
    sim_api: tuple[EnphaseSimulator, Api],
) -> None:
    sim, api = sim_api
    system_id = sim.system_ids[0]
    lagging = sim.encharge_serials(system_id)[0]
    sim.set_device_lag(lagging, timedelta(hours=2))
    sim.clock.advance(timedelta(minutes=45))
    body = await api.telemetry(system_id, start_at=epoch(START))
    assert body["total_devices"] == 2
    assert body["intervals"]
    assert all(i["soc"]["devices_reporting"] == 1 for i in body["intervals"])
    assert all(i["charge"]["devices_reporting"] == 1 for i in body["intervals"])
    partial = body["intervals"][0]
    sim.clock.advance(timedelta(hours=2))
    body = await api.telemetry(system_id, start_at=epoch(START))
    complete = body["intervals"][0]
    assert complete["end_at"] == partial["end_at"]
    assert complete["soc"]["devices_reporting"] == 2
    truth = sim.ground_truth_battery(system_id, START, START + timedelta(minutes=15))[0]
    assert (complete["charge"]["enwh"], complete["discharge"]["enwh"]) == (
        truth.charge_wh,
        truth.discharge_wh,
    )
    assert complete["soc"]["percent"] == truth.soc_percent
    # The partial interval held only the punctual device's values.
    punctual = sim.encharge_serials(system_id)[1]
    alone = sim.ground_truth_encharge(system_id, punctual, START, START + timedelta(minutes=15))[0]
    assert (partial["charge"]["enwh"], partial["discharge"]["enwh"]) == (
        alone.charge_wh,
        alone.discharge_wh,
    )
    assert partial["soc"]["percent"] == alone.soc_percent
    # The lagging device's own feed shows nothing newer than before the lag.
    own = await api.encharge(system_id, lagging, start_at=epoch(START))
    assert own["intervals"][0]["end_at"] == partial["end_at"]


async def test_late_device_interval_arrives_after_later_ones(
    session: aiohttp.ClientSession,
) -> None:
    sim, api = await open_api(session, seed=2, late_probability=0.3, late_delay=timedelta(hours=3))
    async with sim:
        system_id = sim.system_ids[0]
        start = epoch(START) - 4 * 3600
        found = False
        for serial in sim.encharge_serials(system_id):
            truth = [i.end_at for i in sim.ground_truth_encharge(system_id, serial, start, START)]
            body = await api.encharge(system_id, serial, start_at=start)
            visible = [i["end_at"] for i in body["intervals"]]
            missing = [e for e in truth if e not in visible and e < visible[-1]]
            found = found or bool(missing)
        assert found, "seed 2 should produce a late interval in the last 4 hours"
        # The system aggregate reports fewer devices for those intervals, then catches up.
        body = await api.telemetry(system_id, start_at=start)
        assert any(i["soc"]["devices_reporting"] < 2 for i in body["intervals"])
        sim.clock.advance(timedelta(hours=3, minutes=5))
        for serial in sim.encharge_serials(system_id):
            truth = sim.ground_truth_encharge(system_id, serial, start, START)
            body = await api.encharge(system_id, serial, start_at=start)
            got = {i["end_at"]: i for i in body["intervals"]}
            for interval in truth:
                assert got[interval.end_at]["charge"]["enwh"] == interval.charge_wh
                assert got[interval.end_at]["soc"]["percent"] == interval.soc_percent


async def test_add_encharge_appears_and_reports_from_now(
    sim_api: tuple[EnphaseSimulator, Api],
) -> None:
    sim, api = sim_api
    system_id = sim.system_ids[1]
    serial = sim.add_encharge(system_id, capacity_wh=3360)
    assert serial not in sim.encharge_serials(sim.system_ids[0])
    _, body = await api.get(f"/systems/{system_id}/devices")
    assert serial in [e["serial_number"] for e in body["devices"]["encharges"]]
    sim.clock.advance(timedelta(hours=1))
    body = await api.encharge(system_id, serial, start_at=epoch(START))
    assert body["intervals"]
    assert body["intervals"][0]["end_at"] == epoch(START) + 900
    status, body = await api.get(
        f"/systems/{system_id}/devices/encharges/{serial}/telemetry", start_at=epoch(START) - 900
    )
    assert status == 422
    body = await api.telemetry(system_id, start_at=epoch(START))
    assert body["total_devices"] == 3
    # The default window (local midnight today) is valid for a device installed today.
    body = await api.encharge(system_id, serial)
    assert body["intervals"][0]["end_at"] == epoch(START) + 900


# -- auth ----------------------------------------------------------------------------------


async def test_api_key_and_bearer_are_required(sim_api: tuple[EnphaseSimulator, Api]) -> None:
    sim, api = sim_api
    url = sim.base_url + "/api/v4/systems"
    bearer = {"Authorization": f"Bearer {api.access_token}"}
    async with api.session.get(url, headers=bearer) as response:
        assert response.status == 401
        assert (await response.json())["code"] == 401
    async with api.session.get(url, params={"key": "nope"}, headers=bearer) as response:
        assert response.status == 401
    async with api.session.get(url, params={"key": sim.api_key}) as response:
        assert response.status == 401
        assert await response.json() == {
            "message": "Not Authorized",
            "details": "User is not authorized",
            "code": 401,
        }
    api.access_token = "forged"
    status, body = await api.get("/systems")
    assert (status, body["details"]) == (401, "User is not authorized")
    assert sim.request_count == 4
    assert sim.path_counts["/api/v4/systems"] == 4


async def test_access_token_expires_in_real_time(session: aiohttp.ClientSession) -> None:
    sim, api = await open_api(session, access_token_lifetime=timedelta(seconds=0.3))
    async with sim:
        assert (await api.get("/systems"))[0] == 200
        await asyncio.sleep(0.35)
        status, body = await api.get("/systems")
        assert (status, body["code"]) == (401, 401)
        status, token = await api.token(grant_type="refresh_token", refresh_token=api.refresh_token)
        assert status == 200
        api.access_token = token["access_token"]
        assert (await api.get("/systems"))[0] == 200
        sim.expire_access_tokens()
        assert (await api.get("/systems"))[0] == 401


async def test_refresh_rotation_kills_the_old_refresh_token(
    sim_api: tuple[EnphaseSimulator, Api],
) -> None:
    sim, api = sim_api
    status, token = await api.token(grant_type="refresh_token", refresh_token=api.refresh_token)
    assert status == 200
    assert set(token) >= {
        "access_token",
        "token_type",
        "refresh_token",
        "expires_in",
        "scope",
        "enl_uid",
        "jti",
    }
    assert (token["token_type"], token["scope"], token["expires_in"]) == (
        "bearer",
        "read write",
        86393,
    )
    assert token["refresh_token"] != api.refresh_token
    status, body = await api.token(grant_type="refresh_token", refresh_token=api.refresh_token)
    assert (status, body) == (
        400,
        {"error": "invalid_grant", "error_description": "Invalid refresh token"},
    )
    status, again = await api.token(
        grant_type="refresh_token", refresh_token=token["refresh_token"]
    )
    assert status == 200
    api.access_token = again["access_token"]
    assert (await api.get("/systems"))[0] == 200
    assert sim.token_requests == 3
    assert sim.token_grants["refresh_token"] == 3
    assert sim.request_count == 1


async def test_token_endpoint_requires_basic_auth_and_query_params(
    sim_api: tuple[EnphaseSimulator, Api],
) -> None:
    sim, api = sim_api
    params = {"grant_type": "refresh_token", "refresh_token": api.refresh_token}
    status, body = await api.token(None, **params)
    assert (status, body["error"]) == (401, "invalid_client")
    wrong = "Basic " + base64.b64encode(f"{sim.client_id}:wrong".encode()).decode()
    status, body = await api.token(wrong, **params)
    assert (status, body["error"]) == (401, "invalid_client")
    # Parameters posted as a form body are not read.
    raw = f"{sim.client_id}:{sim.client_secret}".encode()
    async with api.session.post(
        sim.token_url,
        data=params,
        headers={"Authorization": "Basic " + base64.b64encode(raw).decode()},
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "unsupported_grant_type"
    # The refresh token survived the refused attempts.
    assert (await api.token(**params))[0] == 200


async def test_authorization_code_flow(sim_api: tuple[EnphaseSimulator, Api]) -> None:
    sim, api = sim_api
    redirect = "https://example.test/callback"
    query = {
        "response_type": "code",
        "client_id": sim.client_id,
        "redirect_uri": redirect,
        "state": "xyz",
    }
    async with api.session.get(sim.authorize_url, params=query, allow_redirects=False) as r:
        assert r.status == 302
        location = urlsplit(r.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect
    got = parse_qs(location.query)
    assert got["state"] == ["xyz"]
    code = got["code"][0]
    status, body = await api.token(
        grant_type="authorization_code", code=code, redirect_uri="https://other.test/"
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    async with api.session.get(sim.authorize_url, params=query, allow_redirects=False) as r:
        code = parse_qs(urlsplit(r.headers["Location"]).query)["code"][0]
    status, token = await api.token(
        grant_type="authorization_code", code=code, redirect_uri=redirect
    )
    assert status == 200
    api.access_token = token["access_token"]
    assert (await api.get("/systems"))[0] == 200
    status, body = await api.token(
        grant_type="authorization_code", code=code, redirect_uri=redirect
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    async with api.session.get(
        sim.authorize_url, params={**query, "client_id": "unknown"}, allow_redirects=False
    ) as r:
        assert r.status == 400
        assert (await r.json())["error"] == "invalid_client"


# -- rate limits -----------------------------------------------------------------------------


async def test_per_minute_limit_answers_429(session: aiohttp.ClientSession) -> None:
    if time.time() % 60 > 57:  # keep the burst inside one fixed window
        await asyncio.sleep(60 - time.time() % 60 + 0.05)
    sim, api = await open_api(session, plan="watt")
    async with sim:
        for _ in range(10):
            assert (await api.get("/systems"))[0] == 200
        url = sim.base_url + "/api/v4/systems"
        headers = {"Authorization": f"Bearer {api.access_token}"}
        async with session.get(url, params={"key": sim.api_key}, headers=headers) as response:
            assert response.status == 429
            assert "Retry-After" not in response.headers
            body = await response.json()
        assert body["message"] == "Too Many Requests"
        assert body["details"] == "Usage limit exceeded for plan Watt"
        assert (body["code"], body["period"], body["limit"]) == (429, "minute", 10)
        assert body["period_end"] - body["period_start"] == 60
        assert body["period_start"] <= time.time() < body["period_end"]
        assert sim.limiter.month_used == 10


async def test_monthly_quota_answers_429_until_the_month_rolls(
    session: aiohttp.ClientSession,
) -> None:
    sim, api = await open_api(session, plan="kilowatt")
    async with sim:
        assert (await api.get("/systems"))[0] == 200
        sim.faults.exhaust_monthly_quota()
        status, body = await api.get("/systems")
        assert status == 429
        assert (body["period"], body["limit"]) == ("month", 50_000)
        assert body["details"] == "Usage limit exceeded for plan Kilowatt"
        assert body["period_start"] == epoch(datetime(2026, 6, 1, tzinfo=UTC))
        assert body["period_end"] == epoch(datetime(2026, 7, 1, tzinfo=UTC))
        sim.clock.advance(timedelta(days=30))
        assert (await api.get("/systems"))[0] == 200
    # The quota counts for real, too.
    sim, api = await open_api(session, plan="unlimited")
    async with sim:
        for _ in range(3):
            assert (await api.get("/systems"))[0] == 200
        assert sim.limiter.month_used == 3
        # A month that ended keeps its count (benchmarks check a month's spend by it).
        sim.clock.advance(timedelta(days=31))
        assert (await api.get("/systems"))[0] == 200
        assert sim.limiter.month_used == 1
        assert sim.limiter.past_months == {epoch(datetime(2026, 6, 1, tzinfo=UTC)): 3}


# -- faults ----------------------------------------------------------------------------------


async def test_injected_status_faults(sim_api: tuple[EnphaseSimulator, Api]) -> None:
    sim, api = sim_api
    sim.faults.fail_next(2, 503)
    for _ in range(2):
        status, body = await api.get("/systems")
        assert (status, body["code"], body["message"]) == (503, 503, "Service Unavailable")
    assert (await api.get("/systems"))[0] == 200
    sim.faults.fail_next(1, 500, path="telemetry")
    assert (await api.get("/systems"))[0] == 200
    status, body = await api.get(f"/systems/{sim.system_ids[0]}/telemetry/battery")
    assert (status, body["code"]) == (500, 500)
    sim.faults.fail_next(1, 429)
    status, body = await api.get("/systems")
    assert (status, body["period"]) == (429, "minute")
    assert sim.faults.fired["status"] == 4


async def test_latency_malformed_truncated_and_dropped(
    sim_api: tuple[EnphaseSimulator, Api],
) -> None:
    sim, api = sim_api
    url = sim.base_url + "/api/v4/systems"
    params = {"key": sim.api_key}
    headers = {"Authorization": f"Bearer {api.access_token}"}
    sim.faults.set_latency(0.3)
    began = time.perf_counter()
    assert (await api.get("/systems"))[0] == 200
    assert time.perf_counter() - began >= 0.3
    sim.faults.clear()

    sim.faults.malform_next()
    async with api.session.get(url, params=params, headers=headers) as response:
        assert response.status == 200
        raw = await response.read()
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)

    sim.faults.truncate_next()
    with pytest.raises(aiohttp.ClientPayloadError):
        async with api.session.get(url, params=params, headers=headers) as response:
            await response.read()

    # aiohttp silently retries an idempotent request when the server disconnects (once
    # on a fresh connection, once more per pooled one): arm plenty, count what fired.
    sim.faults.drop_next(10)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            async with fresh.get(url, params=params, headers=headers) as response:
                await response.read()
    assert 1 <= sim.faults.fired["drop"] < 10
    sim.faults.clear()
    assert (await api.get("/systems"))[0] == 200
    assert not sim.faults.pending


async def test_revoked_tokens_and_token_endpoint_faults(
    sim_api: tuple[EnphaseSimulator, Api],
) -> None:
    sim, api = sim_api
    sim.faults.revoke_tokens()
    assert (await api.get("/systems"))[0] == 401
    status, body = await api.token(grant_type="refresh_token", refresh_token=api.refresh_token)
    assert (status, body["error"]) == (400, "invalid_grant")
    # Token-endpoint faults apply only when asked for.
    sim.faults.fail_next(1, 503, path="/oauth/token")
    assert (await api.token(grant_type="refresh_token", refresh_token="x"))[0] == 400
    sim.faults.clear()
    sim.faults.include_token_endpoint = True
    sim.faults.fail_next(1, 503, path="/oauth/token")
    assert (await api.token(grant_type="refresh_token", refresh_token="x"))[0] == 503


async def test_admin_routes_arm_faults_and_move_the_clock(
    sim_api: tuple[EnphaseSimulator, Api],
) -> None:
    sim, api = sim_api
    async with api.session.post(
        sim.base_url + "/__admin/faults", json={"kind": "status", "status": 502, "count": 1}
    ) as response:
        assert response.status == 200
    assert (await api.get("/systems"))[0] == 502
    async with api.session.post(
        sim.base_url + "/__admin/faults", json={"kind": "exhaust_quota"}
    ) as response:
        assert response.status == 200
    status, body = await api.get("/systems")
    assert (status, body["period"]) == (429, "month")
    async with api.session.post(
        sim.base_url + "/__admin/clock", json={"advance_seconds": 900}
    ) as response:
        state = await response.json()
    assert state["now"] == epoch(START) + 900
    assert sim.clock.now() == START + timedelta(minutes=15)
    async with api.session.post(
        sim.base_url + "/__admin/faults", json={"kind": "bogus"}
    ) as response:
        assert response.status == 400


# -- errors ----------------------------------------------------------------------------------


async def test_not_found_bodies(sim_api: tuple[EnphaseSimulator, Api]) -> None:
    sim, api = sim_api
    status, body = await api.get("/systems/1/telemetry/battery")
    assert (status, body) == (
        404,
        {"message": "Not Found", "details": 'System not found for {:id=>"1"}', "code": 404},
    )
    status, body = await api.get("/systems/config/1/battery_settings")
    assert status == 404
    system_id = sim.system_ids[0]
    status, body = await api.get(f"/systems/{system_id}/devices/encharges/999/telemetry")
    assert (status, body["message"], body["code"]) == (404, "Not Found", 404)
    assert "Encharge not found" in body["details"]


async def test_unprocessable_bodies(sim_api: tuple[EnphaseSimulator, Api]) -> None:
    sim, api = sim_api
    system_id = sim.system_ids[0]
    telemetry = f"/systems/{system_id}/telemetry/battery"

    async def details(status_and_body: tuple[int, Any]) -> str:
        status, body = status_and_body
        assert status == 422, body
        assert (body["message"], body["code"]) == ("Unprocessable Entity", 422)
        return str(body["details"])

    assert "granularity" in await details(await api.get(telemetry, granularity="month"))
    assert (
        await details(await api.get(telemetry, start_at=epoch(START) + 60))
        == "Requested date is in the future"
    )
    assert (
        await details(await api.get(telemetry, start_date="2026-06-02"))
        == "Requested date is in the future"
    )
    text = await details(await api.get(telemetry, start_at=epoch(START) - 3 * 86400))
    assert text.startswith("Requested date range is invalid for this system.")
    first = epoch(START - timedelta(days=2)) + 900
    assert f":first_interval=>{first}" in text
    assert ":last_interval=>" in text
    assert "2 years" in await details(await api.get(telemetry, start_at=epoch(START) - 800 * 86400))
    settings = f"/systems/config/{system_id}/battery_settings"
    assert "battery_mode" in await details(
        await api.put(settings, {"battery_mode": "self-consumption"})
    )
    assert "reserve_soc" in await details(await api.put(settings, {"reserve_soc": 101}))
    assert "reserve_soc" in await details(await api.put(settings, {"reserve_soc": -1}))
    assert "energy_independence" in await details(
        await api.put(settings, {"energy_independence": "yes"})
    )
    storm = f"/systems/config/{system_id}/storm_guard"
    assert "storm_guard_status" in await details(await api.put(storm, {}))
    load = f"/systems/config/{system_id}/load_control"
    assert "name" in await details(await api.put(load, {"mode": "Basic"}))
    assert "soc_low" in await details(await api.put(load, {"name": "NC1", "soc_low": 5}))
    assert "mode" in await details(await api.put(load, {"name": "NC1", "mode": "Turbo"}))
    assert (
        await details(await api.put(load, {"name": "NC1", "mode": "Advanced_BatteryPowered"}))
        == "soc_low is mandatory for Advanced_BatteryPowered mode"
    )
    # Nothing was changed by the refused requests.
    _, body = await api.get(settings)
    assert (body["battery_mode"], body["reserve_soc"]) == ("Self-consumption", 20)


async def test_system_without_encharges_has_no_battery_config(
    session: aiohttp.ClientSession,
) -> None:
    sim, api = await open_api(session, encharges=[1, 0])
    async with sim:
        status, body = await api.get(f"/systems/config/{sim.system_ids[1]}/battery_settings")
        assert (status, body["details"]) == (422, "System doesn't have encharges")


async def test_load_control_get_and_put(sim_api: tuple[EnphaseSimulator, Api]) -> None:
    sim, api = sim_api
    path = f"/systems/config/{sim.system_ids[0]}/load_control"
    status, body = await api.get(path)
    assert status == 200
    circuit = body["load_control_data"][0]
    assert circuit["name"] == "NC1"
    assert set(circuit) == {
        "name",
        "load_name",
        "owner_can_override",
        "mode",
        "soc_low",
        "soc_high",
        "status",
        "essential_start_time",
        "essential_end_time",
    }
    status, body = await api.put(
        path,
        {
            "name": "NC1",
            "mode": "Scheduled",
            "essential_start_time": 3600,
            "essential_end_time": 7200,
        },
    )
    assert status == 200
    _, body = await api.get(path)
    circuit = body["load_control_data"][0]
    assert (circuit["mode"], circuit["essential_start_time"], circuit["essential_end_time"]) == (
        "Scheduled",
        3600,
        7200,
    )
    status, body = await api.put(
        path, {"name": "NC1", "mode": "Advanced_BatteryPowered", "soc_low": 40}
    )
    assert status == 200
    assert body["load_control_data"][0]["soc_low"] == 40


# -- determinism and speed ----------------------------------------------------------------------


async def test_same_seed_same_data(session: aiohttp.ClientSession) -> None:
    bodies = []
    for seed in (4, 4, 5):
        sim, api = await open_api(session, seed=seed, late_probability=0.1)
        async with sim:
            start = epoch(START) - 2 * 86400
            system_id = sim.system_ids[0]
            body = await api.telemetry(system_id, start_at=start, granularity="week")
            serial = sim.encharge_serials(system_id)[0]
            device = await api.encharge(system_id, serial, start_at=start, granularity="week")
            bodies.append((sim.system_ids, sim.encharge_serials(system_id), body, device))
    assert bodies[0] == bodies[1]
    assert bodies[0][2] != bodies[2][2]


async def test_week_of_a_year_long_history_is_fast(session: aiohttp.ClientSession) -> None:
    sim, api = await open_api(session, systems=1, history=timedelta(days=365))
    async with sim:
        system_id = sim.system_ids[0]
        sim.sync()
        start = epoch(START) - 7 * 86400
        await api.telemetry(system_id, start_at=start, granularity="week")
        began = time.perf_counter()
        for _ in range(5):
            body = await api.telemetry(system_id, start_at=start, granularity="week")
        per_request = (time.perf_counter() - began) / 5
        assert len(body["intervals"]) >= 670
        assert per_request < 0.1
        status, lifetime = await api.get(f"/systems/{system_id}/battery_lifetime")
        assert status == 200
        assert len(lifetime["charge"]) >= 365


# -- clock, app factory, runner and CLI ------------------------------------------------------


def test_sim_clock_advance_and_speed() -> None:
    clock = SimClock(START)
    assert clock.now() == START
    assert clock.advance(timedelta(minutes=15)) == START + timedelta(minutes=15)
    clock.advance(60)
    assert clock.epoch() == epoch(START) + 960
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(timedelta(seconds=-1))
    clock.speed = 3600.0
    time.sleep(0.05)
    assert clock.now() >= START + timedelta(minutes=16, seconds=150)
    clock.speed = 0.0
    frozen = clock.now()
    time.sleep(0.01)
    assert clock.now() == frozen
    with pytest.raises(ValueError, match="aware"):
        SimClock(datetime(2026, 1, 1))


async def test_make_app_mounts_in_a_test_server() -> None:
    app = make_app(seed=1, start=START, history=timedelta(days=1))
    sim = app[SIMULATOR_KEY]
    async with TestClient(TestServer(app)) as client:
        response = await client.get(
            "/api/v4/systems",
            params={"key": sim.api_key},
            headers={"Authorization": f"Bearer {sim.token.access_token}"},
        )
        assert response.status == 200
        assert (await response.json())["total"] == 2
    with pytest.raises(RuntimeError, match="not serving"):
        _ = sim.base_url


async def test_admin_system_route_and_state(sim_api: tuple[EnphaseSimulator, Api]) -> None:
    sim, api = sim_api
    system_id = sim.system_ids[0]
    async with api.session.post(
        sim.base_url + "/__admin/system",
        json={"system_id": system_id, "off_grid": True, "storm_alert": True, "add_encharge": True},
    ) as response:
        assert response.status == 200
        state = await response.json()
    assert state["systems"][str(system_id)]["off_grid"] is True
    assert len(state["systems"][str(system_id)]["encharges"]) == 3
    _, body = await api.get(f"/systems/config/{system_id}/grid_status")
    assert body["grid_state"] == "Off Grid"
    _, body = await api.get(f"/systems/config/{system_id}/storm_guard")
    assert body["storm_alert"] == "true"


async def test_serve_announces_and_stops(tmp_path: Path) -> None:
    stop = asyncio.Event()
    lines: list[str] = []
    token_file = tmp_path / "token.json"

    def announce(text: str) -> None:
        lines.append(text)
        stop.set()

    await asyncio.wait_for(
        serve(token_file=token_file, stop=stop, announce=announce, seed=2, port=0), 10
    )
    banner = lines[0]
    assert "http://127.0.0.1:" in banner
    assert "/oauth/token" in banner
    assert str(token_file) in banner
    stored = json.loads(token_file.read_text())
    assert set(stored) >= {"access_token", "refresh_token", "expires_at"}


def test_cli_parsers() -> None:
    args = build_parser().parse_args(["--port", "0", "--plan", "watt", "--speed", "60"])
    assert (args.host, args.port, args.plan, args.speed) == ("127.0.0.1", 0, "watt", 60.0)
    top = argparse.ArgumentParser()
    sub = top.add_subparsers(dest="command")
    add_simulate_parser(sub)
    args = top.parse_args(["simulate", "--systems", "3", "--encharges", "1", "--seed", "9"])
    assert (args.command, args.systems, args.encharges, args.seed) == ("simulate", 3, 1, 9)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--plan", "gigawatt"])


async def test_plan_access_controls_when_enforced(session: aiohttp.ClientSession) -> None:
    sim, api = await open_api(session, plan="watt", enforce_plan_access=True)
    async with sim:
        system_id = sim.system_ids[0]
        assert (await api.get(f"/systems/{system_id}/telemetry/battery"))[0] == 200
        serial = sim.encharge_serials(system_id)[0]
        status, body = await api.get(f"/systems/{system_id}/devices/encharges/{serial}/telemetry")
        assert (status, body["details"]) == (403, "Not authorized to access this resource")
        status, body = await api.get(f"/systems/config/{system_id}/battery_settings")
        assert (status, body["message"], body["code"]) == (403, "Forbidden", 403)


async def test_password_grant_and_unsupported_grant(sim_api: tuple[EnphaseSimulator, Api]) -> None:
    _, api = sim_api
    status, token = await api.token(grant_type="password", username="a@b.c", password="pw")
    assert status == 200
    api.access_token = token["access_token"]
    assert (await api.get("/systems"))[0] == 200
    status, body = await api.token(grant_type="client_credentials")
    assert (status, body["error"]) == (400, "unsupported_grant_type")
