"""The simulator's gateway writes and Commissioning routes, read as raw HTTP.

What a client of any language would see: the official body shapes of the tariff and
battery_mode, the Commissioning API's error shapes, and the ``/__admin/writes`` knobs
(delay, refuse, revert) with their state under ``/__admin/state``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from enphase_battery.simulator import EnphaseSimulator
from enphase_battery.simulator.gateway import GatewayWrites, WriteAction

START = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
async def sim() -> AsyncIterator[EnphaseSimulator]:
    async with EnphaseSimulator(
        seed=8, systems=2, encharges=[1, 0], start=START, history=timedelta(hours=3)
    ) as simulator:
        yield simulator


@pytest.fixture
async def http(sim: EnphaseSimulator) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {sim.token.access_token}"}
    async with aiohttp.ClientSession(base_url=sim.base_url, headers=headers) as session:
        yield session


async def call(
    sim: EnphaseSimulator, http: aiohttp.ClientSession, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with http.request(
        method, "/api/v4" + path, params={"key": sim.api_key}, json=body
    ) as response:
        return response.status, await response.json()


async def admin(http: aiohttp.ClientSession, body: Any) -> tuple[int, Any]:
    async with http.post("/__admin/writes", json=body) as response:
        return response.status, await response.json()


async def test_tariff_has_the_official_shape(
    sim: EnphaseSimulator, http: aiohttp.ClientSession
) -> None:
    status, body = await call(sim, http, "GET", f"/systems/config/{sim.system_ids[0]}/tariff")
    assert status == 200
    assert set(body) == {"tariff", "task"}
    assert set(body["tariff"]) == {
        "storage_settings", "currency", "single_rate", "seasons", "seasons_sell",
    }  # fmt: skip
    assert set(body["task"]) == {"status", "created_at"}
    group = body["tariff"]["seasons"][0]["days"][0]
    assert {"id", "days", "must_charge_start", "must_charge_duration", "periods"} <= set(group)
    assert {"enable_charge_from_grid", "enable_discharge_to_grid"} <= set(group)
    assert all(isinstance(p["start"], int) for p in group["periods"])
    assert all(isinstance(p["rate"], str) for p in group["periods"])


async def test_battery_mode_get_put_and_errors(
    sim: EnphaseSimulator, http: aiohttp.ClientSession
) -> None:
    system_id, pv_only = sim.system_ids
    path = f"/activations/{system_id}/battery_mode"
    status, body = await call(sim, http, "GET", path)
    assert status == 200
    assert set(body) == {"CFG_allowed", "DTG_allowed"}
    status, body = await call(sim, http, "PUT", path, {"CFG_allowed": True, "DTG_allowed": True})
    assert (status, body) == (200, {"message": "Battery mode updated successfully"})
    assert (await call(sim, http, "GET", path))[1] == {"CFG_allowed": True, "DTG_allowed": True}
    # Both fields are required; booleans only.
    status, body = await call(sim, http, "PUT", path, {"CFG_allowed": False})
    assert (status, body) == (422, {"errorMessages": ["DTG_allowed is required"]})
    status, _ = await call(sim, http, "PUT", path, {"CFG_allowed": "no", "DTG_allowed": 0})
    assert status == 422
    assert (await call(sim, http, "GET", path))[1] == {"CFG_allowed": True, "DTG_allowed": True}
    # A PV-only site, an unknown system: the Commissioning API's own error shapes.
    status, body = await call(sim, http, "GET", f"/activations/{pv_only}/battery_mode")
    assert status == 422
    assert "PV only site" in body["errorMessages"][0]
    status, body = await call(sim, http, "GET", "/activations/999/battery_mode")
    assert (status, body) == (404, {"reason": "404", "message": ["System not found"]})


async def test_admin_writes_delays_refuses_and_reverts(
    sim: EnphaseSimulator, http: aiohttp.ClientSession
) -> None:
    system_id = sim.system_ids[0]
    path = f"/activations/{system_id}/battery_mode"
    off = {"CFG_allowed": False, "DTG_allowed": False}
    on = {"CFG_allowed": True, "DTG_allowed": True}
    await call(sim, http, "PUT", path, off)  # no delay by default: applied at once
    assert (await call(sim, http, "GET", path))[1] == off

    status, state = await admin(http, {"delay_s": 0.2, "revert_after_s": 0.2})
    assert status == 200
    assert state["writes"]["delay_s"] == 0.2
    await call(sim, http, "PUT", path, on)
    assert (await call(sim, http, "GET", path))[1] == off  # not yet
    await asyncio.sleep(0.25)
    assert (await call(sim, http, "GET", path))[1] == on

    await admin(http, {"next": ["refuse", "revert"]})
    await call(sim, http, "PUT", path, off)  # refused: never applied
    await asyncio.sleep(0.25)
    assert (await call(sim, http, "GET", path))[1] == on
    await call(sim, http, "PUT", path, off)  # reverted: applied, then undone
    await asyncio.sleep(0.25)
    assert (await call(sim, http, "GET", path))[1] == off
    await asyncio.sleep(0.25)
    assert (await call(sim, http, "GET", path))[1] == on

    async with http.get("/__admin/state") as response:
        state = await response.json()
    assert state["writes"]["counts"] == {
        "accepted": 4, "applied": 3, "refused": 1, "reverted": 1,
    }  # fmt: skip
    assert state["systems"][str(system_id)]["cfg_allowed"] is True

    for bad in ({"delay_s": -1}, {"next": ["explode"]}, {"speed": 2}, [1]):
        status, body = await admin(http, bad)
        assert status == 400
        assert "error" in body
    status, state = await admin(http, {"clear": True})
    assert state["writes"]["delay_s"] == 0.0
    assert state["writes"]["next"] == []


async def test_a_delayed_settings_write_answers_the_state_asked_for(
    sim: EnphaseSimulator, http: aiohttp.ClientSession
) -> None:
    system_id = sim.system_ids[0]
    sim.writes.delay_s = 60.0
    path = f"/systems/config/{system_id}/battery_settings"
    before = (await call(sim, http, "GET", path))[1]
    status, answer = await call(sim, http, "PUT", path, {"reserve_soc": 63})
    assert status == 200
    assert answer["reserve_soc"] == 63
    assert (await call(sim, http, "GET", path))[1] == before
    assert sim.writes.state()["pending"] == [
        {"system_id": system_id, "operation": "battery_settings", "action": "apply",
         "applied": False},
    ]  # fmt: skip


def test_gateway_writes_on_a_clock_of_their_own() -> None:
    now = [100.0]
    writes = GatewayWrites(delay_s=5, revert_after_s=10, clock=lambda: now[0])
    state = {"value": 0}

    def setter(value: int) -> Any:
        def apply() -> Any:
            before = state["value"]
            state["value"] = value
            return lambda: state.update(value=before)

        return apply

    writes.submit(1, "x", setter(1))
    writes.settle(1)
    assert state["value"] == 0
    now[0] = 105.0
    writes.settle(2)  # another system's look applies nothing of system 1
    assert state["value"] == 0
    writes.settle(1)
    assert state["value"] == 1
    writes.next_actions.append(WriteAction.REVERT)
    writes.submit(1, "x", setter(2))
    now[0] = 110.0
    writes.settle(1)
    assert state["value"] == 2
    now[0] = 120.0
    writes.settle(1)
    assert state["value"] == 1
    assert writes.state()["pending"] == []
    with pytest.raises(ValueError, match="delay_s"):
        GatewayWrites(delay_s=float("nan"))
